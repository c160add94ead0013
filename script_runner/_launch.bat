@echo off
rem Shared body of the per-project .bat launchers: ensure .venv, then run script_runner.py and pass
rem its exit code on (0 ok, 1 task failed, 2 bad arguments/config, 3 locked, 4 quality check failed,
rem 5 upstream not ready).
rem The code is also left in ETL_EXIT_CODE for the calling launcher (some cmd.exe look-alikes lose
rem the code of "exit /b" across "call").
rem Usage: _launch.bat <project> [I|F] [START] [END] [--dry-run | --check | other flags]
setlocal EnableExtensions
set "ROOT=%~dp0.."
set "VENV=%ROOT%\.venv"
set "PY=%VENV%\Scripts\python.exe"
set "PROJECT=%~1"
shift

if exist "%PY%" goto venv_ready
echo script_runner: first use: creating .venv (this takes a minute) 1>&2
where py >nul 2>nul && (py -3.11 -m venv "%VENV%" || py -3 -m venv "%VENV%")
if not exist "%PY%" python -m venv "%VENV%"
if not exist "%PY%" (
    echo script_runner: Python 3.11 was not found; install it from python.org and tick "Add to PATH" 1>&2
    endlocal & set "ETL_EXIT_CODE=2" & exit /b 2
)
"%PY%" -m pip install --quiet --disable-pip-version-check -r "%ROOT%\requirements.txt" 1>&2
if errorlevel 1 (
    echo script_runner: pip could not install requirements.txt; fix the network and run again 1>&2
    rmdir /s /q "%VENV%"
    endlocal & set "ETL_EXIT_CODE=2" & exit /b 2
)
:venv_ready

set "LOADTYPE=I"
set "START="
set "END="
set "A=%~1"
if defined A if not "%A:~0,1%"=="-" (set "LOADTYPE=%~1" & shift)
set "A=%~1"
if defined A if not "%A:~0,1%"=="-" (set "START=%~1" & shift)
set "A=%~1"
if defined A if not "%A:~0,1%"=="-" (set "END=%~1" & shift)
set "EXTRA="
:collect
if "%~1"=="" goto run
set "EXTRA=%EXTRA% %1"
shift
goto collect

:run
set "DATES="
if defined START set "DATES=--start-date "%START%""
if defined END set "DATES=%DATES% --end-date "%END%""
"%PY%" "%ROOT%\script_runner.py" --project %PROJECT% --load-type %LOADTYPE% %DATES% %EXTRA%
set "RC=%ERRORLEVEL%"
endlocal & set "ETL_EXIT_CODE=%RC%" & exit /b %RC%
