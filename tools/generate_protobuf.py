#!/usr/bin/env python3
"""Regenerates src/api/protobuf/messages.json: the protobuf messages of Kubernetes' GA API
types, so `engine serve` can read the protobuf bodies typed clients send
(`kubectl create configmap|secret|deployment …` POST `application/vnd.kubernetes.protobuf`).

Sources (Apache-2.0): the `generated.proto` files of k8s.io/api (every GA group version) and
k8s.io/apimachinery (meta/v1, resource, runtime, intstr), for field numbers, names and types;
and the Go `types.go` beside them, for which fields JSON leaves out when zero (`omitempty` on a
value, not a pointer: gogo-protobuf always writes those, Go's JSON drops them when zero).

Output: {message: [[number, jsonName, label, type(, valueType)]]}, label `o` optional,
`z` optional and left out when zero, `r` repeated, `m` map (type = key type).

    python3 tools/generate_protobuf.py API_GIT_DIR APIMACHINERY_GIT_DIR
      (git directories of kubernetes/api and kubernetes/apimachinery; read with `git show`)
"""
import json
import re
import subprocess
import sys

GA = re.compile(r"^v\d+$")


def git(repo, *args):
    return subprocess.run(["git", "--git-dir", repo, *args], check=True,
                          capture_output=True, text=True).stdout


def files(repo):
    return git(repo, "ls-tree", "-r", "--name-only", "HEAD").split("\n")


def parse_proto(text):
    package = re.search(r"^package ([\w.]+);", text, re.M).group(1)
    messages = {}
    # Comments first, so braces or `=` inside them do not confuse the field pattern.
    text = re.sub(r"//[^\n]*", "", text)
    for m in re.finditer(r"^message (\w+) \{(.*?)^\}", text, re.M | re.S):
        fields = []
        for f in re.finditer(r"(optional|repeated)?\s*(map<\s*([\w.]+)\s*,\s*([\w.]+)\s*>|[\w.]+)\s+(\w+)\s*=\s*(\d+)\s*;", m.group(2)):
            label, typ, key, value, name, number = f.groups()
            if key:
                fields.append([int(number), name, "m", key, qualify(value, package)])
            else:
                fields.append([int(number), name, "r" if label == "repeated" else "o", qualify(typ, package)])
        messages[f"{package}.{m.group(1)}"] = fields
    return package, messages


SCALARS = {"string", "bytes", "bool", "int32", "int64", "uint32", "uint64", "double", "float",
           "sint32", "sint64", "fixed32", "fixed64", "sfixed32", "sfixed64"}


def qualify(typ, package):
    if typ in SCALARS:
        return typ
    if typ.startswith("."):
        return typ[1:]
    return f"{package}.{typ}"


def parse_go(text):
    """{(struct, protobuf number): (json name, omitted when zero)}"""
    out = {}
    struct = None
    for line in text.split("\n"):
        s = re.match(r"^type (\w+) struct \{", line)
        if s:
            struct = s.group(1)
            continue
        if line.startswith("}"):
            struct = None
            continue
        f = re.match(r'^\s+\w+\s+(\S+)\s+`json:"([^"]*)"\s+protobuf:"\w+,(\d+),', line)
        if struct and f:
            typ, tag, number = f.groups()
            name, _, opts = tag.partition(",")
            value = not typ.startswith(("*", "[]", "map["))
            out[(struct, int(number))] = (name, value and "omitempty" in opts.split(","))
    return out


def main():
    api, machinery = sys.argv[1], sys.argv[2]
    sources = []
    for path in files(api):
        parts = path.split("/")
        if len(parts) == 3 and GA.match(parts[1]) and parts[2] == "generated.proto":
            sources.append((api, path, path.replace("generated.proto", "types.go")))
    for d in ["pkg/apis/meta/v1", "pkg/api/resource", "pkg/runtime", "pkg/util/intstr"]:
        sources.append((machinery, f"{d}/generated.proto", f"{d}/types.go"))
    every = {}
    for repo, proto, gotypes in sources:
        package, messages = parse_proto(git(repo, "show", f"HEAD:{proto}"))
        try:
            go = parse_go(git(repo, "show", f"HEAD:{gotypes}"))
        except subprocess.CalledProcessError:
            go = {}
        for name, fields in messages.items():
            short = name.rsplit(".", 1)[1]
            for f in fields:
                json_name, zero_omitted = go.get((short, f[0]), (f[1], False))
                if json_name:
                    f[1] = json_name
                if f[2] == "o" and zero_omitted:
                    f[2] = "z"
            every[name] = fields
    out = "src/api/protobuf/messages.json"
    with open(out, "w") as fh:
        json.dump(every, fh, separators=(",", ":"), sort_keys=True)
        fh.write("\n")
    print(f"{out}: {len(every)} messages")


main()
