@echo off
rem sales_demo launcher for Windows: sales_demo.bat [I|F] [START] [END] [--dry-run|--check]
rem Double-clicked, the window stays open on failure (up to 5 minutes, or until a key is pressed);
rem under Task Scheduler nothing waits (timeout exits at once without a console).
call "%~dp0_launch.bat" sales_demo %*
set "RC=%ERRORLEVEL%"
if not "%RC%"=="0" echo %CMDCMDLINE% | find /i "/c" >nul && timeout /t 300
exit /b %RC%
