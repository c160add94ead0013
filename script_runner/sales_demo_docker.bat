@echo off
rem sales_demo inside Docker on Windows: sales_demo_docker.bat [I|F] [START] [END] [--dry-run|--check]
rem Double-clicked (started by "cmd /c" with no arguments), the window stays open on failure for up
rem to 5 minutes or until a key is pressed. Schedulers pass the load type (see the README's schtasks
rem line), so under Task Scheduler nothing ever waits; the exit code is passed on either way.
setlocal
set "ETL_EXIT_CODE="
call "%~dp0_docker.bat" sales_demo %*
set "RC=%ERRORLEVEL%"
if defined ETL_EXIT_CODE set "RC=%ETL_EXIT_CODE%"
if not "%RC%"=="0" if "%~1"=="" echo %CMDCMDLINE% | find /i "/c" >nul && timeout /t 300
exit /b %RC%
