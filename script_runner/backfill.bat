@echo off
rem Resumable backfill on Windows: backfill.bat PROJECT START END [LOAD_DAYS] [--redo-failed or --restart]
rem START..END is loaded in windows of LOAD_DAYS days (default 1), one run each; the same command again
rem resumes. The exit code is script_runner.py's, also left in ETL_EXIT_CODE.
setlocal EnableExtensions
if "%~3"=="" (
    echo backfill: usage: backfill.bat PROJECT START END [LOAD_DAYS] [--redo-failed or --restart] 1>&2
    endlocal & set "ETL_EXIT_CODE=2" & exit /b 2
)
set "PROJECT=%~1"
set "START=%~2"
set "END=%~3"
shift
shift
shift
set "DAYS=1"
set "A=%~1"
if defined A if not "%A:~0,1%"=="-" (set "DAYS=%~1" & shift)
set "EXTRA="
:collect
if "%~1"=="" goto run
set "EXTRA=%EXTRA% %1"
shift
goto collect
:run
set "ETL_EXIT_CODE="
call "%~dp0_launch.bat" %PROJECT% I --backfill --start-date "%START%" --end-date "%END%" --load-days %DAYS%%EXTRA%
set "RC=%ERRORLEVEL%"
if defined ETL_EXIT_CODE set "RC=%ETL_EXIT_CODE%"
endlocal & set "ETL_EXIT_CODE=%RC%" & exit /b %RC%
