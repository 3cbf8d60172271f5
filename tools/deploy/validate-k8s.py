#!/usr/bin/env python3
"""Client-side checks of the Kubernetes manifests under deploy/k8s (no cluster needed).

    python3 tools/deploy/validate-k8s.py [DIR]        (default: deploy/k8s beside this repository)

Every *.yaml is parsed (PyYAML, python3-yaml on Debian); every document needs apiVersion, kind and
metadata.name and names no namespace (the files are applied with -n). Then, by kind, the fields the API
server would require and the references between the documents: Deployment selectors match their pod
labels, probes name real ports, volumes, ConfigMaps, Secrets and PVCs exist; Services select a
Deployment's pods and target a port they declare; Ingress backends name a Service and one of its ports;
the shared PVC is ReadWriteMany; each kustomization lists files that exist; the KServe ServingRuntime
declares model formats and protocol v2, and the InferenceService names that runtime, one of its formats,
a protocol it speaks and a storage URI (a pvc:// one naming a PVC here); NetworkPolicies select a
Deployment's pods and name ports those pods declare. Nin's own rules: the api and worker roles (Nin__Role),
readiness on /health/ready and liveness on /health/live, a GPU worker asking for nvidia.com/gpu, sticky
cookie affinity for /hubs/, every variable docker-compose.scale.yml gives a Nin container present in the
Kubernetes pods' environment too, no ASPNETCORE_FORWARDEDHEADERS_ENABLED (it believes X-Forwarded-For from
any sender), and a pod that believes forwarded headers (ForwardedHeaders__Known*) is guarded by an ingress
NetworkPolicy.

Prints one line per document checked and exits 1 with every problem found. This is not the API server's
schema validation (no kubeconform/kubectl is installable offline here); it checks what is listed above.
"""
import os
import re
import sys

try:
    import yaml
except ImportError:  # pragma: no cover
    sys.exit("validate-k8s: PyYAML is missing (apt-get install python3-yaml)")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "deploy", "k8s"))
COMPOSE = os.path.join(REPO, "docker-compose.scale.yml")

problems = []
docs = []  # (file, doc)


def problem(where, text):
    problems.append(f"{where}: {text}")


def get(obj, path, default=None):
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return default
        obj = obj[part]
    return obj


def need(where, obj, path, kind=None):
    value = get(obj, path)
    if value is None or value == "" or value == [] or value == {}:
        problem(where, f"missing {path}")
        return None
    if kind is not None and not isinstance(value, kind):
        problem(where, f"{path} should be a {kind.__name__}, is {type(value).__name__}")
        return None
    return value


# ------------------------------------------------------------------ parse

for dirpath, _, files in sorted(os.walk(ROOT)):
    for name in sorted(files):
        if not name.endswith((".yaml", ".yml")):
            continue
        path = os.path.join(dirpath, name)
        rel = os.path.relpath(path, REPO)
        try:
            with open(path, encoding="utf-8") as f:
                loaded = [d for d in yaml.safe_load_all(f) if d is not None]
        except yaml.YAMLError as e:
            problem(rel, f"not valid YAML: {e}")
            continue
        if not loaded:
            problem(rel, "no documents")
        for d in loaded:
            docs.append((rel, d))

if not docs:
    sys.exit(f"validate-k8s: no YAML documents under {ROOT}")

by_kind = {}
for rel, d in docs:
    if not isinstance(d, dict):
        problem(rel, "a document is not a mapping")
        continue
    kind = d.get("kind")
    if kind == "Kustomization":
        by_kind.setdefault(kind, []).append((rel, d))
        continue
    where = f"{rel} {kind}/{get(d, 'metadata.name')}"
    need(where, d, "apiVersion", str)
    need(where, d, "kind", str)
    need(where, d, "metadata.name", str)
    name = get(d, "metadata.name") or ""
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) or len(name) > 63:
        problem(where, f"metadata.name '{name}' is not a DNS-1123 label")
    if get(d, "metadata.namespace") is not None:
        problem(where, "names a namespace (the manifests are namespace-agnostic: apply them with -n)")
    by_kind.setdefault(kind, []).append((rel, d))

API_VERSIONS = {
    "Deployment": "apps/v1", "Service": "v1", "ConfigMap": "v1", "Secret": "v1", "PersistentVolumeClaim": "v1",
    "Ingress": "networking.k8s.io/v1", "NetworkPolicy": "networking.k8s.io/v1", "ServingRuntime": "serving.kserve.io/v1alpha1",
    "InferenceService": "serving.kserve.io/v1beta1", "Kustomization": "kustomize.config.k8s.io/v1beta1",
}
for kind, items in by_kind.items():
    for rel, d in items:
        if kind not in API_VERSIONS:
            problem(rel, f"kind {kind} is not one this checker knows")
        elif d.get("apiVersion") != API_VERSIONS[kind]:
            problem(rel, f"{kind} should be {API_VERSIONS[kind]}, is {d.get('apiVersion')}")


def names(kind):
    return {get(d, "metadata.name") for _, d in by_kind.get(kind, [])}


configmaps = {get(d, "metadata.name"): d for _, d in by_kind.get("ConfigMap", [])}
secrets = {get(d, "metadata.name"): d for _, d in by_kind.get("Secret", [])}
pvcs = {get(d, "metadata.name"): d for _, d in by_kind.get("PersistentVolumeClaim", [])}

# ------------------------------------------------------------------ ConfigMap, Secret, PVC

for rel, d in by_kind.get("ConfigMap", []):
    for k, v in (d.get("data") or {}).items():
        if not isinstance(v, str):
            problem(f"{rel} ConfigMap/{get(d, 'metadata.name')}", f"data.{k} must be a string (quote it), is {type(v).__name__}")
for rel, d in by_kind.get("Secret", []):
    values = {**(d.get("stringData") or {}), **(d.get("data") or {})}
    if not values:
        problem(rel, "Secret has no data")
    for k, v in values.items():
        if not isinstance(v, str):
            problem(f"{rel} Secret/{get(d, 'metadata.name')}", f"{k} must be a string")
for rel, d in by_kind.get("PersistentVolumeClaim", []):
    where = f"{rel} PersistentVolumeClaim/{get(d, 'metadata.name')}"
    modes = need(where, d, "spec.accessModes", list) or []
    if "ReadWriteMany" not in modes:
        problem(where, "the shared Nin home must be ReadWriteMany (api and worker pods on any node write to it)")
    need(where, d, "spec.resources.requests.storage")


# ------------------------------------------------------------------ pods

def check_container(where, c, volumes, port_names):
    need(where, c, "name", str)
    need(where, c, "image", str)
    for p in c.get("ports") or []:
        if not isinstance(p.get("containerPort"), int):
            problem(where, f"port {p} has no integer containerPort")
    declared = {p.get("name") for p in c.get("ports") or [] if p.get("name")} | {p.get("containerPort") for p in c.get("ports") or []}
    port_names |= declared
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        pr = c.get(probe)
        if pr is None:
            continue
        http = pr.get("httpGet")
        if not http or not http.get("path") or http.get("port") is None:
            problem(where, f"{probe} needs httpGet.path and httpGet.port")
        elif http["port"] not in declared:
            problem(where, f"{probe} port {http['port']} is not one of the container's ports {sorted(map(str, declared))}")
    for m in c.get("volumeMounts") or []:
        if m.get("name") not in volumes:
            problem(where, f"volumeMount {m.get('name')} names no volume of the pod")
        if not m.get("mountPath"):
            problem(where, f"volumeMount {m.get('name')} has no mountPath")
    env = {}
    for e in c.get("env") or []:
        if not e.get("name"):
            problem(where, "an env entry has no name")
            continue
        if "value" in e and not isinstance(e["value"], str):
            problem(where, f"env {e['name']} value must be a string (quote it)")
        ref = get(e, "valueFrom.secretKeyRef") or get(e, "valueFrom.configMapKeyRef")
        if ref:
            source = secrets if get(e, "valueFrom.secretKeyRef") else configmaps
            obj = source.get(ref.get("name"))
            keys = set((obj or {}).get("data") or {}) | set((obj or {}).get("stringData") or {})
            if obj is None or ref.get("key") not in keys:
                problem(where, f"env {e['name']} refers to {ref.get('name')}/{ref.get('key')}, which is not defined here")
        env[e["name"]] = e.get("value")
    for src in c.get("envFrom") or []:
        if "configMapRef" in src:
            cm = configmaps.get(src["configMapRef"].get("name"))
            if cm is None:
                problem(where, f"envFrom ConfigMap {src['configMapRef'].get('name')} is not defined here")
            else:
                env.update({k: v for k, v in (cm.get("data") or {}).items() if k not in env})
        if "secretRef" in src:
            s = secrets.get(src["secretRef"].get("name"))
            if s is None:
                problem(where, f"envFrom Secret {src['secretRef'].get('name')} is not defined here")
            else:
                env.update({k: v for k, v in {**(s.get("stringData") or {}), **(s.get("data") or {})}.items() if k not in env})
    return env


def pod_volumes(where, spec):
    volumes = {}
    for v in spec.get("volumes") or []:
        volumes[v.get("name")] = v
        claim = get(v, "persistentVolumeClaim.claimName")
        if claim is not None and claim not in pvcs:
            problem(where, f"volume {v.get('name')} claims {claim}, which is not defined here")
    return volumes


deployments = {}
nin_envs = {}  # deployment name -> env of its first container
for rel, d in by_kind.get("Deployment", []):
    name = get(d, "metadata.name")
    where = f"{rel} Deployment/{name}"
    selector = need(where, d, "spec.selector.matchLabels", dict) or {}
    labels = need(where, d, "spec.template.metadata.labels", dict) or {}
    for k, v in selector.items():
        if labels.get(k) != v:
            problem(where, f"selector {k}={v} does not match the pod template's labels")
    if not isinstance(get(d, "spec.replicas", 1), int):
        problem(where, "spec.replicas must be an integer")
    spec = get(d, "spec.template.spec") or {}
    containers = need(where, spec, "containers", list) or []
    volumes = pod_volumes(where, spec)
    ports = set()
    envs = [check_container(where, c, volumes, ports) for c in containers]
    deployments[name] = (labels, ports, d)
    if envs:
        nin_envs[name] = envs[0]
    role = envs[0].get("Nin__Role") if envs else None
    if role not in ("api", "worker"):
        problem(where, f"Nin__Role is {role!r}: each Deployment here runs the api or the worker role")
        continue
    c = containers[0]
    if get(c, "readinessProbe.httpGet.path") != "/health/ready":
        problem(where, "readiness must probe /health/ready")
    if get(c, "livenessProbe.httpGet.path") != "/health/live":
        problem(where, "liveness must probe /health/live")
    if not any(m.get("mountPath") == envs[0].get("NIN_HOME") and get(volumes.get(m.get("name"), {}), "persistentVolumeClaim.claimName")
               for m in c.get("volumeMounts") or []):
        problem(where, f"NIN_HOME ({envs[0].get('NIN_HOME')}) is not the shared PVC's mount")
    for required in ("Hangfire__PostgresConnection", "SignalR__Redis", "Security__ApiKeys__0"):
        if required not in envs[0]:
            problem(where, f"{required} is not in the pod's environment")
    if envs[0].get("Torch__Device") == "cuda":
        if str(get(c, "resources.limits", {}).get("nvidia.com/gpu")) != "1":
            problem(where, "a cuda worker must ask for resources.limits nvidia.com/gpu: 1")
        if ":cuda" not in c.get("image", ""):
            problem(where, "a cuda worker needs the CUDA image (tag :cuda, TORCH_BACKEND=cuda-linux)")

roles = {(nin_envs.get(n) or {}).get("Nin__Role") for n in deployments}
if not {"api", "worker"} <= roles:
    problem(ROOT, f"expected an api and a worker Deployment, found roles {sorted(r for r in roles if r)}")
api_replicas = [get(d, "spec.replicas", 1) for n, (_, _, d) in deployments.items() if (nin_envs.get(n) or {}).get("Nin__Role") == "api"]
if api_replicas and max(api_replicas) < 2:
    problem(ROOT, "the api Deployment should run 2 or more replicas")

# ------------------------------------------------------------------ Services and Ingress

services = {}
for rel, d in by_kind.get("Service", []):
    name = get(d, "metadata.name")
    where = f"{rel} Service/{name}"
    ports = need(where, d, "spec.ports", list) or []
    services[name] = {p.get("name") for p in ports} | {p.get("port") for p in ports}
    for p in ports:
        if not isinstance(p.get("port"), int):
            problem(where, f"port {p} has no integer port")
    if get(d, "spec.type") == "ExternalName":
        host = need(where, d, "spec.externalName", str) or ""
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", host):
            problem(where, f"externalName '{host}' is not a DNS name")
        continue
    selector = need(where, d, "spec.selector", dict) or {}
    matched = [n for n, (labels, _, _) in deployments.items() if all(labels.get(k) == v for k, v in selector.items())]
    if not matched:
        problem(where, f"selector {selector} matches no Deployment's pods")
    for p in ports:
        target = p.get("targetPort", p.get("port"))
        for n in matched:
            if target not in deployments[n][1]:
                problem(where, f"targetPort {target} is not a port of Deployment {n}'s containers")

hub_sticky = False
for rel, d in by_kind.get("Ingress", []):
    where = f"{rel} Ingress/{get(d, 'metadata.name')}"
    rules = need(where, d, "spec.rules", list) or []
    for rule in rules:
        for path in get(rule, "http.paths", []) or []:
            if path.get("pathType") not in ("Prefix", "Exact", "ImplementationSpecific"):
                problem(where, f"path {path.get('path')}: pathType must be Prefix, Exact or ImplementationSpecific")
            service = get(path, "backend.service.name")
            port = get(path, "backend.service.port.name") or get(path, "backend.service.port.number")
            if service not in services:
                problem(where, f"path {path.get('path')}: backend Service {service} is not defined here")
            elif port not in services[service]:
                problem(where, f"path {path.get('path')}: Service {service} has no port {port}")
            if str(path.get("path", "")).startswith("/hubs"):
                annotations = get(d, "metadata.annotations", {}) or {}
                hub_sticky = annotations.get("nginx.ingress.kubernetes.io/affinity") == "cookie"
if by_kind.get("Ingress") and not hub_sticky:
    problem(ROOT, "no Ingress routes /hubs/ with nginx.ingress.kubernetes.io/affinity: cookie (SignalR needs sticky sessions)")

# ------------------------------------------------------------------ KServe

runtimes = {}
for rel, d in by_kind.get("ServingRuntime", []):
    name = get(d, "metadata.name")
    where = f"{rel} ServingRuntime/{name}"
    formats = need(where, d, "spec.supportedModelFormats", list) or []
    for f in formats:
        if not f.get("name"):
            problem(where, "a supportedModelFormats entry has no name")
    protocols = need(where, d, "spec.protocolVersions", list) or []
    if "v2" not in protocols:
        problem(where, "protocolVersions must include v2 (Nin serves the KServe v2 REST protocol)")
    containers = need(where, d, "spec.containers", list) or []
    volumes = {v.get("name"): v for v in get(d, "spec.volumes", []) or []}
    ports = set()
    for c in containers:
        check_container(where, c, volumes, ports)
    if containers and containers[0].get("name") != "kserve-container":
        problem(where, "the serving container must be named kserve-container")
    if containers and 8080 not in ports:
        problem(where, "the serving container must listen on 8080 (Nin's ASPNETCORE_HTTP_PORTS, KServe's default)")
    for probe in ("readinessProbe", "livenessProbe"):
        path = get(containers[0] if containers else {}, f"{probe}.httpGet.path", "")
        if not str(path).startswith("/v2/health/"):
            problem(where, f"{probe} should use the v2 protocol's /v2/health/... ({path})")
    runtimes[name] = ({f.get("name"): f for f in formats}, protocols)

for rel, d in by_kind.get("InferenceService", []):
    where = f"{rel} InferenceService/{get(d, 'metadata.name')}"
    model = need(where, d, "spec.predictor.model", dict) or {}
    fmt = need(where, model, "modelFormat.name", str)
    runtime = model.get("runtime")
    if runtime is not None and runtime not in runtimes:
        problem(where, f"runtime {runtime} is not a ServingRuntime defined here")
    elif runtime is not None:
        formats, protocols = runtimes[runtime]
        if fmt not in formats:
            problem(where, f"modelFormat {fmt} is not one runtime {runtime} supports ({sorted(formats)})")
        elif model.get("modelFormat", {}).get("version") not in (None, formats[fmt].get("version")):
            problem(where, f"modelFormat version {model['modelFormat'].get('version')} differs from the runtime's {formats[fmt].get('version')}")
        if model.get("protocolVersion", "v1") not in protocols:
            problem(where, f"protocolVersion {model.get('protocolVersion', 'v1')} is not one runtime {runtime} speaks ({protocols})")
    uri = need(where, model, "storageUri", str) or ""
    m = re.match(r"^(pvc|s3|gs|https?|hdfs|webhdfs|oci|hf)://([^/]+)(/.*)?$", uri)
    if not m:
        problem(where, f"storageUri '{uri}' is not a URI KServe's storage initializer reads")
    elif m.group(1) == "pvc" and m.group(2) not in pvcs:
        problem(where, f"storageUri names PVC {m.group(2)}, which is not defined here")

# ------------------------------------------------------------------ kustomizations

for rel, d in by_kind.get("Kustomization", []):
    base = os.path.dirname(os.path.join(REPO, rel))
    for r in d.get("resources") or []:
        if not os.path.exists(os.path.join(base, r)):
            problem(rel, f"resource {r} does not exist")

# ------------------------------------------------------------------ NetworkPolicies and forwarded headers

guarded = set()  # Deployments whose pods an ingress NetworkPolicy selects
for rel, d in by_kind.get("NetworkPolicy", []):
    where = f"{rel} NetworkPolicy/{get(d, 'metadata.name')}"
    selector = need(where, d, "spec.podSelector.matchLabels", dict) or {}
    matched = [n for n, (labels, _, _) in deployments.items() if all(labels.get(k) == v for k, v in selector.items())]
    if not matched:
        problem(where, f"podSelector {selector} matches no Deployment's pods")
    types = get(d, "spec.policyTypes", []) or []
    if "Ingress" in types:
        guarded.update(matched)
    for rule in get(d, "spec.ingress", []) or []:
        if not rule.get("from"):
            problem(where, "an ingress rule without `from` admits every source")
        for port in rule.get("ports") or []:
            for n in matched:
                if port.get("port") not in deployments[n][1]:
                    problem(where, f"port {port.get('port')} is not a port of Deployment {n}'s containers")

for name, env in nin_envs.items():
    where = f"Deployment/{name}"
    if "ASPNETCORE_FORWARDEDHEADERS_ENABLED" in env:
        problem(where, "ASPNETCORE_FORWARDEDHEADERS_ENABLED believes X-Forwarded-For from anyone; use ForwardedHeaders__KnownNetworks__N")
    if any(k.startswith("ForwardedHeaders__Known") for k in env) and name not in guarded:
        problem(where, "believes forwarded headers (ForwardedHeaders__Known*) but no NetworkPolicy limits who reaches its pods")

# ------------------------------------------------------------------ the compose file's settings

if os.path.exists(COMPOSE):
    with open(COMPOSE, encoding="utf-8") as f:
        compose = yaml.safe_load(f)  # anchors and merge keys resolved by PyYAML
    for service in ("api", "worker"):
        env = get(compose, f"services.{service}.environment") or {}
        role = env.get("Nin__Role")
        pods = [e for e in nin_envs.values() if e.get("Nin__Role") == role]
        for pod in pods:
            for key in env:
                if key not in pod:
                    problem(ROOT, f"docker-compose.scale.yml gives {service} {key}, which no {role} pod here gets")

# ------------------------------------------------------------------ report

for kind, items in sorted(by_kind.items()):
    for rel, d in items:
        print(f"checked {rel}: {kind} {get(d, 'metadata.name') or ''}".rstrip())
if problems:
    print(f"\nvalidate-k8s: {len(problems)} problem(s):", file=sys.stderr)
    for p in problems:
        print(f"  {p}", file=sys.stderr)
    sys.exit(1)
print(f"validate-k8s: {sum(len(v) for v in by_kind.values())} documents in {os.path.relpath(ROOT, REPO)}: OK")
