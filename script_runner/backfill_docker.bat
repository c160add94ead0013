@echo off
rem Resumable backfill inside Docker on Windows: backfill_docker.bat PROJECT START END [LOAD_DAYS] [flags]
setlocal EnableExtensions
if "%~3"=="" (
    echo backfill: usage: backfill_docker.bat PROJECT START END [LOAD_DAYS] [--redo-failed or --restart] 1>&2
    endlocal & exit /b 2
)
set "DAYS=%~4"
if "%DAYS%"=="" set "DAYS=1"
call "%~dp0_docker.bat" %~1 I --backfill --start-date "%~2" --end-date "%~3" --load-days %DAYS% %5 %6
exit /b %ERRORLEVEL%
