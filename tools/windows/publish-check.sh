#!/usr/bin/env bash
# Windows check, run by CI on Linux: `Nin.Api` builds and publishes for win-x64 with the card's default
# backend (TorchSharp-cpu, libtorch for Windows inside) and carries what it needs to start there, and
# nin.ps1 (the PowerShell launcher Windows users run) parses and answers under PowerShell 7.
#
#   tools/windows/publish-check.sh
#
# The publish uses its own artifacts folder, so the repository's normal build is untouched. The
# platform-compatibility analyzer (CA1416, an error in .editorconfig) fails the build on a Linux-only
# call outside an OperatingSystem guard. PowerShell comes from NuGet as the `PowerShell` .NET tool.
set -euo pipefail
REPO=$(cd -P -- "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/../.." && pwd)
OUT=$REPO/artifacts/win-x64
START=$SECONDS
die() { printf 'windows check: FAILED: %s\n' "$*" >&2; exit 1; }
cd "$REPO"

rm -rf -- "$OUT"
./nin dotnet publish Nin.Api/Nin.Api.csproj -c Release -r win-x64 --self-contained false -p:TorchBackend=cpu \
    -p:NinBuildFrontend=false --artifacts-path artifacts/win-build -o "$OUT" -v quiet --nologo ||
    die "dotnet publish -r win-x64 failed"
for f in Nin.Api.exe Nin.Api.dll LibTorchSharp.dll torch_cpu.dll onnxruntime.dll libSkiaSharp.dll wwwroot/lib/app.js DefaultModel/fashion-mnist/model.json; do
    [[ -s $OUT/$f ]] || die "the win-x64 publish lacks $f"
done
head -c 2 "$OUT/Nin.Api.exe" | grep -q MZ || die "Nin.Api.exe is not a Windows executable"
echo "win-x64 publish: $(du -sh -- "$OUT" | cut -f1) in $OUT (Nin.Api.exe, LibTorchSharp.dll, torch_cpu.dll, onnxruntime.dll, libSkiaSharp.dll, the dashboard and the shipped model)"

tools=$REPO/artifacts/pwsh
[[ -x $tools/pwsh ]] || dotnet tool install --tool-path "$tools" PowerShell --version 7.6.10 >/dev/null || die "installing PowerShell (the .NET tool) failed"
"$tools/pwsh" -NoProfile -Command '$errors = $null; [void][System.Management.Automation.Language.Parser]::ParseFile((Resolve-Path ./nin.ps1), [ref]$null, [ref]$errors); if ($errors) { $errors | ForEach-Object { Write-Error $_.ToString() }; exit 1 }' ||
    die "nin.ps1 does not parse"
"$tools/pwsh" -NoProfile -File ./nin.ps1 doctor | sed 's/^/nin.ps1 doctor: /'
if "$tools/pwsh" -NoProfile -File ./nin.ps1 no-such-command 2>/dev/null; then die "nin.ps1 accepted an unknown command"; fi
echo "windows check: passed in $((SECONDS - START))s"
