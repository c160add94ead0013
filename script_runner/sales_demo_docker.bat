@echo off
rem sales_demo inside Docker on Windows: sales_demo_docker.bat [I|F] [START] [END] [--dry-run|--check]
call "%~dp0_docker.bat" sales_demo %*
exit /b %ERRORLEVEL%
