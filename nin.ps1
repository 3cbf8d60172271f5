<#
.SYNOPSIS
    nin.ps1: the Windows (and any PowerShell 7) counterpart of ./nin: build, serve, test and benchmark Nin.

.DESCRIPTION
    .\nin.ps1 serve [ARGS...]   build Nin.Api (Release) and run it; ARGS go to the app,
                                e.g. .\nin.ps1 serve --urls http://127.0.0.1:5080
    .\nin.ps1 test [ARGS...]    dotnet test Nin.sln -c Release [ARGS]; with no --filter, the tests whose
                                services are present (see docs/windows.md): always Unit and Host, Cluster
                                when NIN_TEST_POSTGRES and NIN_TEST_REDIS are set, Browser when NIN_CHROMIUM is
    .\nin.ps1 bench [ARGS...]   dotnet run --project tools/Nin.Bench -c Release -- ARGS
    .\nin.ps1 doctor            what this script found: dotnet, node, the Torch backend, the test services

    The Torch backend is a build choice: $env:TorchBackend = 'cuda-windows' (NVIDIA GPUs, needs the full NuGet
    registry), 'cpu' (default) or 'system' with $env:NIN_LIBTORCH_DIR. Unlike ./nin on Debian 12, nothing runs in a
    Linux root here: Windows' own libraries are enough for TorchSharp.
#>
[CmdletBinding(PositionalBinding = $false)]
param(
    [Parameter(Position = 0)] [string] $Command = 'help',
    [Parameter(ValueFromRemainingArguments = $true)] [string[]] $Rest = @()
)
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$Repo = $PSScriptRoot

function Fail([string] $message) { [Console]::Error.WriteLine("nin: error: $message"); exit 1 }

function Invoke-Native([string] $exe, [string[]] $arguments) {
    & $exe @arguments
    if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
}

function Assert-Dotnet {
    if (-not (Get-Command dotnet -ErrorAction SilentlyContinue)) { Fail 'the .NET 10 SDK is needed: dotnet is not on PATH (https://dot.net)' }
}

function Get-TestFilter {
    # The categories whose services are here; ./nin on Linux provides them all itself.
    $categories = @('Unit', 'Host')
    if ($env:NIN_TEST_POSTGRES -and $env:NIN_TEST_REDIS) { $categories += 'Cluster' }
    if ($env:NIN_CHROMIUM) { $categories += 'Browser' }
    ($categories | ForEach-Object { "Category=$_" }) -join '|'
}

switch ($Command) {
    'serve' {
        Assert-Dotnet
        $api = Join-Path $Repo 'Nin.Api'
        Invoke-Native dotnet @('build', $api, '-c', 'Release', '-v', 'quiet', '--nologo')
        $env:NIN_INVOCATION_DIR = (Get-Location).Path
        # The content root (appsettings.json, wwwroot, the shipped model) is the project folder, as with ./nin.
        Push-Location $api
        try { Invoke-Native dotnet (@((Join-Path $api 'bin/Release/net10.0/Nin.Api.dll')) + $Rest) } finally { Pop-Location }
    }
    'test' {
        Assert-Dotnet
        $arguments = @('test', (Join-Path $Repo 'Nin.sln'), '-c', 'Release') + $Rest
        if (-not ($Rest -match '^--filter')) {
            $filter = Get-TestFilter
            Write-Host "nin: running the categories present here: $filter (./nin on Linux runs them all)"
            $arguments += @('--filter', $filter)
        }
        Invoke-Native dotnet $arguments
    }
    'bench' {
        Assert-Dotnet
        Invoke-Native dotnet @('build', (Join-Path $Repo 'Nin.Api'), '-c', 'Release', '-v', 'quiet', '--nologo')
        Invoke-Native dotnet (@('run', '--project', (Join-Path $Repo 'tools/Nin.Bench'), '-c', 'Release', '--') + $Rest)
    }
    'doctor' {
        $dotnet = Get-Command dotnet -ErrorAction SilentlyContinue
        $node = Get-Command node -ErrorAction SilentlyContinue
        $backend = if ($env:TorchBackend) { $env:TorchBackend } else { 'cpu' }
        Write-Host "host:        $([System.Runtime.InteropServices.RuntimeInformation]::OSDescription) ($([System.Runtime.InteropServices.RuntimeInformation]::OSArchitecture))"
        Write-Host "dotnet:      $(if ($dotnet) { (& dotnet --version) } else { 'NOT FOUND (install the .NET 10 SDK)' })"
        Write-Host "node:        $(if ($node) { (& node --version) } else { 'NOT FOUND (Node.js 18+ and npm build the dashboard)' })"
        Write-Host "backend:     $backend$(if ($backend -eq 'system') { " (NIN_LIBTORCH_DIR=$env:NIN_LIBTORCH_DIR)" })"
        Write-Host "tests:       $(Get-TestFilter)"
        Write-Host "datasets:    $(if ($env:NIN_TEST_DATA_DIR) { $env:NIN_TEST_DATA_DIR } else { Join-Path (Split-Path $Repo) 'shared/datasets' })"
    }
    { $_ -in 'help', '-h', '--help' } {
        Get-Help $PSCommandPath -Detailed | Out-String | Write-Host
    }
    default { Fail "unknown command '$Command' (serve, test, bench, doctor, help)" }
}
