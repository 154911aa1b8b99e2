"""Go's own text/template (Ollama's template engine) run on test cases: what a Modelfile's TEMPLATE renders to."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

# Ollama's template data: .Messages (system included when there is one), .System, .Prompt, .Response, and its
# think switch (.Think, .IsThinkSet).
GO_RENDERER = """
package main

import (
	"encoding/json"
	"os"
	"strings"
	"text/template"
)

type Message struct {
	Role    string
	Content string
}

type Values struct {
	Messages   []Message
	System     string
	Prompt     string
	Response   string
	Think      bool
	IsThinkSet bool
}

type Case struct {
	Template string
	Values   Values
}

func main() {
	var cases []Case
	raw, _ := os.ReadFile(os.Args[1])
	if err := json.Unmarshal(raw, &cases); err != nil {
		panic(err)
	}
	out := []string{}
	for _, c := range cases {
		t := template.Must(template.New("t").Parse(c.Template))
		var b strings.Builder
		if err := t.Execute(&b, c.Values); err != nil {
			panic(err)
		}
		out = append(out, b.String())
	}
	enc, _ := json.Marshal(out)
	os.Stdout.Write(enc)
}
"""


def go_render(cases: list[dict], work: Path) -> list[str]:
    """Each case ({"Template": …, "Values": {…}}) rendered by Go, in order; skips when Go is not installed."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("Go is not installed (apt-get install golang-go)")
    (work / "main.go").write_text(GO_RENDERER)
    (work / "cases.json").write_text(json.dumps(cases))
    env = {**os.environ, "GOCACHE": str(work / "gocache"), "GOPATH": str(work / "gopath"), "GO111MODULE": "off"}
    proc = subprocess.run([go, "run", "main.go", "cases.json"], cwd=work, capture_output=True, text=True, env=env,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)
