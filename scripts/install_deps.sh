#!/usr/bin/env bash
# Installs the Debian packages stepverify needs to build, test and run.
# Idempotent and quiet when everything is present.
set -euo pipefail

PACKAGES=(
  cmake ninja-build g++ ccache pkg-config make
  libtorch-dev            # the tensor library the backbone runs on
  libgloo-dev             # headers of Gloo, the CPU backend of torch.distributed's c10d (in libtorch_cpu)
  libopenblas0-pthread    # fast BLAS for torch's GEMMs (reference BLAS is ~50x slower)
  libsentencepiece-dev    # sentencepiece tokenizers (tokenizer.model)
  libpcre2-dev            # Unicode regexes for byte-level BPE pre-tokenization
  libicu-dev              # NFC normalisation for byte-level BPE
  libfmt-dev              # formatting
  nlohmann-json3-dev      # JSON (config.json, safetensors headers, CLI I/O)
  libcli11-dev            # command-line parsing for the CLI
  catch2                  # tests
  clang libclang-rt-14-dev  # sanitizer builds and libFuzzer (make sanitize, fuzz, tsan)
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install_deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
