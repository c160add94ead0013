@echo off
rem Run projects one after the other on Windows: chain.bat PROJECT [PROJECT...], each an incremental run.
rem Stops at the first run that does not exit 0 and exits with its code (also left in ETL_EXIT_CODE).
setlocal EnableExtensions
if "%~1"=="" (
    echo chain: usage: chain.bat PROJECT [PROJECT...] 1>&2
    endlocal & set "ETL_EXIT_CODE=2" & exit /b 2
)
:next
if "%~1"=="" goto done
set "ETL_EXIT_CODE="
call "%~dp0_launch.bat" %~1
set "RC=%ERRORLEVEL%"
if defined ETL_EXIT_CODE set "RC=%ETL_EXIT_CODE%"
if not "%RC%"=="0" goto failed
shift
goto next
:failed
echo chain: %~1 ended with exit code %RC%; the projects after it did not run 1>&2
endlocal & set "ETL_EXIT_CODE=%RC%" & exit /b %RC%
:done
endlocal & set "ETL_EXIT_CODE=0" & exit /b 0
