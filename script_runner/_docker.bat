@echo off
rem Shared body of the <project>_docker.bat launchers: the same run inside the runner's Docker image.
rem Build the image once: docker build -f docker\Dockerfile -t etl-runner .
setlocal EnableExtensions
set "ROOT=%~dp0.."
set "PROJECT=%~1"
shift
if "%ETL_DOCKER_IMAGE%"=="" set "ETL_DOCKER_IMAGE=etl-runner:latest"
set "LOADTYPE=I"
set "A=%~1"
if defined A if not "%A:~0,1%"=="-" (set "LOADTYPE=%~1" & shift)
set "DATES="
set "A=%~1"
if defined A if not "%A:~0,1%"=="-" (set "DATES=--start-date %~1" & shift)
set "A=%~1"
if defined A if not "%A:~0,1%"=="-" (set "DATES=%DATES% --end-date %~1" & shift)
set "ENVFILE="
if exist "%ROOT%\.env" set "ENVFILE=--env-file "%ROOT%\.env""
docker run --rm %ENVFILE% -v "%ROOT%\metadata:/app/metadata" %ETL_DOCKER_IMAGE% --project %PROJECT% --load-type %LOADTYPE% %DATES% %1 %2 %3 %4
exit /b %ERRORLEVEL%
