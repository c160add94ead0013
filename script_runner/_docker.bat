@echo off
rem Shared body of the <project>_docker.bat launchers, the twin of _docker.sh: the same run inside the
rem runner's Docker image. Build the image once, in the repository's folder (README, "Docker"):
rem   docker build -f docker\Dockerfile -t etl-runner .
rem Usage: _docker.bat <project> [I|F] [START] [END] [--flags]; ETL_DOCKER_IMAGE overrides the image.
rem The container runs with --network host, metadata\ mounted read-write, and customer_code\,
rem warehouse\, aggregations\ and the .env files mounted read-only, so the runner reads them as it does
rem natively (--env NAME works, a SQL change needs no rebuild). Every ETL_* variable of the caller goes
rem in too, except ETL_HOME (the image's is /app).
rem Docker Desktop shares the host's network only with "Enable host networking" (Settings, Resources,
rem Network; version 4.34 or later). Without it, a database on this computer is host.docker.internal
rem inside the container, not localhost: put those URLs in .env.docker and pass --env docker.
rem Exit codes are the runner's, also left in ETL_EXIT_CODE for the calling launcher; 2 also when
rem Docker or the image is missing, or metadata\ is not writable.
setlocal EnableExtensions DisableDelayedExpansion
for %%I in ("%~dp0..") do set "ROOT=%%~fI"
set "PROJECT=%~1"
shift
if "%ETL_DOCKER_IMAGE%"=="" set "ETL_DOCKER_IMAGE=etl-runner:latest"

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
if "%~1"=="" goto checks
set "EXTRA=%EXTRA% %1"
shift
goto collect

:checks
set "FOUND="
for %%X in (docker.exe docker.cmd docker.bat) do if not defined FOUND if not "%%~$PATH:X"=="" set "FOUND=1"
if not defined FOUND (
    set "WHY=docker was not found on PATH; install Docker Desktop, or run script_runner\%PROJECT%.bat"
    goto fail
)
rem "image inspect" first: "docker run" would try to pull a missing image from a registry.
docker image inspect "%ETL_DOCKER_IMAGE%" >nul 2>nul
if not errorlevel 1 goto image_ready
docker version --format "{{.Server.Version}}" >nul 2>nul
if errorlevel 1 (
    set "WHY=the Docker engine does not answer (is Docker Desktop running? see: docker info)"
    goto fail
)
set "WHY=Docker image %ETL_DOCKER_IMAGE% not found; build it in %ROOT%: docker build -f docker\Dockerfile -t %ETL_DOCKER_IMAGE% ."
goto fail
:image_ready
if not exist "%ROOT%\metadata" mkdir "%ROOT%\metadata" 2>nul
copy /y nul "%ROOT%\metadata\.write-probe" >nul 2>nul
if not exist "%ROOT%\metadata\.write-probe" (
    set "WHY=%ROOT%\metadata is not writable; give your account write access to it"
    goto fail
)
del "%ROOT%\metadata\.write-probe"

rem docker run's options: the folders and .env files, then the caller's ETL_* variables by name
rem (docker reads the values, so a command-line listing does not show them).
set "OPTS=-v "%ROOT%\metadata:/app/metadata""
for %%F in (customer_code warehouse aggregations) do call :add -v "%ROOT%\%%F:/app/%%F:ro"
if exist "%ROOT%\.env" call :add -v "%ROOT%\.env:/app/.env:ro"
rem (".env.*" matches .env too; the pattern is relative so that a space in ROOT cannot split it)
pushd "%ROOT%"
for %%F in (.env.*) do if /i not "%%~nxF"==".env" call :add -v "%ROOT%\%%~nxF:/app/%%~nxF:ro"
popd
for /f "delims==" %%V in ('set') do call :variable "%%V"
if defined TZ call :add --env TZ
set "DATES="
if defined START set "DATES=--start-date "%START%""
if defined END set "DATES=%DATES% --end-date "%END%""
docker run --rm --network host %OPTS% %ETL_DOCKER_IMAGE% --project %PROJECT% --load-type %LOADTYPE% %DATES% %EXTRA%
set "RC=%ERRORLEVEL%"
endlocal & set "ETL_EXIT_CODE=%RC%" & exit /b %RC%

:fail
echo script_runner: %WHY% 1>&2
endlocal & set "ETL_EXIT_CODE=2" & exit /b 2

:add
set "OPTS=%OPTS% %*"
exit /b 0

:variable
set "NAME=%~1"
if /i not "%NAME:~0,4%"=="ETL_" exit /b 0
if /i "%~1"=="ETL_HOME" exit /b 0
if /i "%~1"=="ETL_DOCKER_IMAGE" exit /b 0
if /i "%~1"=="ETL_EXIT_CODE" exit /b 0
set "OPTS=%OPTS% --env %~1"
exit /b 0
