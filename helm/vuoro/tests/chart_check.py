"""Helpers of scripts/check-helm.sh: take a `helm template` output apart, and check that every
metric the alert rules and the dashboard use is one a live router exports.

    chart_check.py split RENDERED OUTDIR
        Writes OUTDIR/builtin.yaml (the objects of Kubernetes' own API), OUTDIR/crds.json (the
        Prometheus Operator's objects), OUTDIR/router.toml (the router's config file from its
        ConfigMap), and, when rendered, OUTDIR/adapters.toml (checked to be TOML),
        OUTDIR/rules.yaml (the PrometheusRule's groups),
        OUTDIR/dashboard.json (the dashboard ConfigMap's JSON), OUTDIR/topics.sh and
        OUTDIR/topics.env (the topics Job's script and environment).

    chart_check.py documented VALUES SCHEMA README
        Fails unless every value of values.yaml is listed in the README's tables and everything
        listed there is a value.

    chart_check.py wiring RENDERED
        Fails, naming each, where rendered objects do not refer to each other correctly:
        Services, ServiceMonitors, PodDisruptionBudgets selecting nothing, ports, volumes,
        probes, Ingress backends or autoscaler targets that do not exist.

    chart_check.py compare-metrics SCRAPE RULES DASHBOARD [--extra-expr EXPR ...]
        Fails, naming each, if a metric used in the rules or the dashboard (or in an extra
        expression) is not in the /metrics scrape, or is used as the wrong kind of series.

Needs Python 3.11 (tomllib) and PyYAML.
"""

import json
import re
import sys
import tomllib
from pathlib import Path

import yaml

# Kinds that Kubernetes' own schemas do not cover; validated against the operator's models.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}

# Series Prometheus makes itself for every target, not the router.
PROMETHEUS_SERIES = {"up"}

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def fail(message):
    print(f"chart_check: {message}", file=sys.stderr)
    sys.exit(1)


def split(rendered, outdir):
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    docs = [d for d in yaml.safe_load_all(Path(rendered).read_text()) if d]
    builtin = [d for d in docs if d.get("kind") not in CRD_KINDS]
    crds = [d for d in docs if d.get("kind") in CRD_KINDS]
    (outdir / "builtin.yaml").write_text(yaml.safe_dump_all(builtin, sort_keys=False))
    (outdir / "crds.json").write_text(json.dumps(crds, indent=1))

    def labelled(kind, component):
        return [
            d
            for d in docs
            if d.get("kind") == kind
            and d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
        ]

    routers = [d for d in labelled("ConfigMap", "router") if "vuoro.toml" in d.get("data", {})]
    if len(routers) != 1:
        fail(f"{rendered}: expected one router ConfigMap with vuoro.toml, found {len(routers)}")
    (outdir / "router.toml").write_text(routers[0]["data"]["vuoro.toml"])
    adapters = [d for d in labelled("ConfigMap", "adapters") if "adapters.toml" in d.get("data", {})]
    if adapters:
        # check-helm.sh runs it through `vuoro adapters --validate-config`; here: TOML with channels.
        text = adapters[0]["data"]["adapters.toml"]
        try:
            listeners = tomllib.loads(text)["channels"]
        except (tomllib.TOMLDecodeError, KeyError) as error:
            fail(f"{rendered}: the adapters' config is not TOML with [channels]: {error}\n{text}")
        print(f"adapters.toml parses; channels: {', '.join(sorted(listeners))}")
        (outdir / "adapters.toml").write_text(text)

    rules = [d for d in docs if d.get("kind") == "PrometheusRule"]
    if rules:
        groups = [g for r in rules for g in r["spec"]["groups"]]
        (outdir / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))

    dashboards = [
        d for d in docs if d.get("kind") == "ConfigMap" and "vuoro.json" in d.get("data", {})
    ]
    if dashboards:
        try:
            dashboard = json.loads(dashboards[0]["data"]["vuoro.json"])
        except json.JSONDecodeError as error:
            fail(f"the dashboard ConfigMap holds no valid JSON: {error}")
        check_dashboard(dashboard)
        (outdir / "dashboard.json").write_text(json.dumps(dashboard, indent=1))

    jobs = labelled("Job", "topics")
    if jobs:
        container = jobs[0]["spec"]["template"]["spec"]["containers"][0]
        (outdir / "topics.sh").write_text(container["args"][0])
        env = [f"{e['name']}={e['value']}" for e in container["env"] if "value" in e]
        (outdir / "topics.env").write_text("\n".join(env) + "\n")

    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)
    print(f"{rendered}: {len(docs)} objects: {', '.join(kinds)}")


def wiring(rendered):
    """Checks that the rendered objects refer to each other correctly: what no schema sees."""
    docs = [d for d in yaml.safe_load_all(Path(rendered).read_text()) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    pods = {name: d["spec"]["template"] for name, d in by_kind.get("Deployment", {}).items()}
    problems = []

    def selects(selector, labels):
        return bool(selector) and all(labels.get(k) == v for k, v in selector.items())

    def port_names(template):
        return {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}

    for name, template in pods.items():
        labels = template["metadata"]["labels"]
        if not selects(by_kind["Deployment"][name]["spec"]["selector"]["matchLabels"], labels):
            problems.append(f"Deployment/{name}: its selector does not match its own pods")
        volumes = template["spec"].get("volumes", [])
        for volume in volumes:
            if "configMap" in volume and volume["configMap"]["name"] not in by_kind.get("ConfigMap", {}):
                problems.append(f"Deployment/{name}: mounts missing ConfigMap {volume['configMap']['name']}")
        for container in template["spec"]["containers"]:
            mounted = {m["name"] for m in container.get("volumeMounts", [])}
            if not mounted <= {v["name"] for v in volumes}:
                problems.append(f"Deployment/{name}: mounts undeclared volumes {mounted}")
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                port = container.get(probe, {}).get("httpGet", {}).get("port")
                if isinstance(port, str) and port not in port_names(template):
                    problems.append(f"Deployment/{name}: {probe} on unknown port {port}")
    for name, service in by_kind.get("Service", {}).items():
        targets = [t for t in pods.values() if selects(service["spec"]["selector"], t["metadata"]["labels"])]
        if not targets:
            problems.append(f"Service/{name}: selects no pods")
        for port in service["spec"]["ports"]:
            target = port.get("targetPort")
            if isinstance(target, str) and not any(target in port_names(t) for t in targets):
                problems.append(f"Service/{name}: targetPort {target} is no container port of its pods")
    for name, monitor in by_kind.get("ServiceMonitor", {}).items():
        services = [
            s for s in by_kind.get("Service", {}).values()
            if selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"].get("labels", {}))
        ]
        names = {p.get("name") for s in services for p in s["spec"]["ports"]}
        if not services:
            problems.append(f"ServiceMonitor/{name}: selects no Service")
        for endpoint in monitor["spec"]["endpoints"]:
            if endpoint["port"] not in names:
                problems.append(f"ServiceMonitor/{name}: port {endpoint['port']} is on none of its Services")
    for name, pdb in by_kind.get("PodDisruptionBudget", {}).items():
        if not any(selects(pdb["spec"]["selector"]["matchLabels"], t["metadata"]["labels"]) for t in pods.values()):
            problems.append(f"PodDisruptionBudget/{name}: selects no pods")
    for name, hpa in by_kind.get("HorizontalPodAutoscaler", {}).items():
        target = hpa["spec"]["scaleTargetRef"]
        if target["name"] not in by_kind.get(target["kind"], {}):
            problems.append(f"HorizontalPodAutoscaler/{name}: scales missing {target['kind']}/{target['name']}")
    for name, ingress in by_kind.get("Ingress", {}).items():
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                service = by_kind.get("Service", {}).get(backend["name"])
                if not service or backend["port"]["name"] not in {p["name"] for p in service["spec"]["ports"]}:
                    problems.append(f"Ingress/{name}: {path['path']} goes to missing {backend['name']}:{backend['port']['name']}")
    if problems:
        fail(f"{rendered}: objects that do not fit together:\n  " + "\n  ".join(problems))
    print(f"{rendered}: selectors, ports, volumes and references all resolve")


def value_paths(values, schema, prefix=""):
    """Every value's dotted path, down to where the schema stops naming keys (free-form maps
    such as labels or resources are one value)."""
    paths = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        node = schema.get("properties", {}).get(key, {})
        if isinstance(value, dict) and node.get("properties") and node.get("additionalProperties") is False:
            paths += value_paths(value, node, path + ".")
        else:
            paths.append(path)
    return paths


def documented_patterns(readme):
    """The value paths the README's tables list, as regular expressions (see its notation)."""
    patterns = []
    for line in Path(readme).read_text().splitlines():
        if not line.startswith("| `"):
            continue
        cell = line.split(" | ")[0]
        tokens = re.findall(r"`([^`]+)`", cell.replace("\\|", "|"))
        base = tokens[0].rsplit(".", 1)[0] if "." in tokens[0] else ""
        for token in tokens:
            path = base + token if token.startswith(".") else token
            regex = ""
            for part in re.split(r"(<[^>]*>|\*)", path):
                if part == "*" or part in ("<...>", "<alert>", "<channel>"):
                    regex += r"[^.]+(\.[^.]+)*" if part == "*" else r"[^.]+"
                elif part.startswith("<"):
                    regex += "(" + "|".join(re.escape(p) for p in part[1:-1].split("|")) + ")"
                else:
                    regex += re.escape(part)
            patterns.append((path, re.compile(regex + r"(\.[^.]+)*$")))
    return patterns


def documented(values_file, schema_file, readme):
    """Every value is documented in the README, and everything documented is a value."""
    values = yaml.safe_load(Path(values_file).read_text())
    schema = json.loads(Path(schema_file).read_text())
    paths = value_paths(values, schema)
    patterns = documented_patterns(readme)
    undocumented = [p for p in paths if not any(r.match(p) for _, r in patterns)]
    unknown = [d for d, r in patterns if not any(r.match(p) for p in paths)]
    if undocumented or unknown:
        fail(
            f"{readme} and {values_file} disagree:\n  "
            + "\n  ".join([f"not documented: {p}" for p in undocumented] + [f"documented but no value: {d}" for d in unknown])
        )
    print(f"all {len(paths)} values are documented in {readme}, and nothing else is")


def check_dashboard(dashboard):
    """What Grafana needs of the dashboard beyond valid JSON: unique panel ids, a place on the
    grid, queries with unique refIds, and only variables it defines."""
    problems = []
    variables = {v["name"] for v in dashboard.get("templating", {}).get("list", [])}
    ids = [p.get("id") for p in dashboard["panels"]]
    if None in ids or len(set(ids)) != len(ids):
        problems.append(f"panel ids missing or repeated: {ids}")
    for panel in dashboard["panels"]:
        title = panel.get("title")
        if not {"x", "y", "w", "h"} <= set(panel.get("gridPos", {})):
            problems.append(f"panel {title!r}: gridPos needs x, y, w and h")
        if panel.get("type") == "row":
            continue
        refs = [t.get("refId") for t in panel.get("targets", [])]
        if not refs or None in refs or len(set(refs)) != len(refs):
            problems.append(f"panel {title!r}: queries need unique refIds: {refs}")
        text = json.dumps(panel)
        for name in set(re.findall(r"\$\{?([a-zA-Z_]+)", text)) - variables - {"__rate_interval"}:
            problems.append(f"panel {title!r}: uses undefined variable ${name}")
    if problems:
        fail("the dashboard is malformed:\n  " + "\n  ".join(problems))


def scrape_families(text):
    """Metric families of a Prometheus text scrape: name -> type."""
    families = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            families[name] = kind
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            if not any(name == f or name.startswith(f) for f in families):
                families[name] = "untyped"
    return families


def expressions(rules_path, dashboard_path):
    """(where, PromQL) for every rule and every dashboard query and variable."""
    found = []
    rules = yaml.safe_load(Path(rules_path).read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            found.append((f"rule {rule.get('alert') or rule.get('record')}", rule["expr"]))
    dashboard = json.loads(Path(dashboard_path).read_text())
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            found.append((f"panel {panel['title']!r}", target["expr"]))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            found.append((f"variable {variable['name']}", query if isinstance(query, str) else query["query"]))
    return found


def metric_names(expr):
    """Metric names an expression selects (vuoro_* and Prometheus' own), quoted strings removed."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    names = set(re.findall(r"(?<![\w:])vuoro_[a-zA-Z0-9_]*", bare))
    names |= {n for n in PROMETHEUS_SERIES if re.search(rf"(?<![\w:]){n}\s*{{", bare)}
    return names, bare


def kind_of(name, families):
    """The family type a used name belongs to, or None if the scrape does not have it."""
    if name in families:
        return families[name]
    for suffix in HISTOGRAM_SUFFIXES:
        base = name[: -len(suffix)]
        if name.endswith(suffix) and families.get(base) == "histogram":
            return "histogram" + suffix
    return None


def compare_metrics(scrape, rules, dashboard, extra):
    families = scrape_families(Path(scrape).read_text())
    exprs = expressions(rules, dashboard) + [("extra expression", e) for e in extra]
    problems, used = [], set()
    for where, expr in exprs:
        names, bare = metric_names(expr)
        for name in sorted(names):
            used.add(name)
            if name in PROMETHEUS_SERIES:
                continue
            kind = kind_of(name, families)
            if kind is None:
                problems.append(f"{where}: {name} is not exported by the router")
            elif kind == "histogram":
                problems.append(f"{where}: {name} is a histogram; use its _bucket, _sum or _count")
        for function, name in re.findall(r"\b(rate|irate|increase)\s*\(\s*(vuoro_[a-zA-Z0-9_]*)", bare):
            kind = kind_of(name, families)
            if kind not in (None, "counter", "histogram_bucket", "histogram_sum", "histogram_count"):
                problems.append(f"{where}: {function}() of {name}, a {kind}, not a counter")
        for name in re.findall(r"histogram_quantile\s*\((?:(?!vuoro_).)*?(vuoro_[a-zA-Z0-9_]*)", bare, re.DOTALL):
            if kind_of(name, families) != "histogram_bucket":
                problems.append(f"{where}: histogram_quantile over {name}, not a histogram's _bucket")
    vuoro_families = {f for f in families if f.startswith("vuoro_")}
    used_families = {f for f in vuoro_families if any(n == f or n.startswith(f + "_") for n in used)}
    print(
        f"{len(exprs)} expressions use {len(used)} metric names; the scrape has "
        f"{len(vuoro_families)} vuoro families, {len(used_families)} of them used"
    )
    unused = sorted(vuoro_families - used_families)
    if unused:
        print(f"exported but used by no rule or panel: {', '.join(unused)}")
    if problems:
        fail("metrics used but not exported as such:\n  " + "\n  ".join(problems))


def main(argv):
    if len(argv) == 3 and argv[0] == "split":
        split(argv[1], argv[2])
    elif len(argv) == 4 and argv[0] == "documented":
        documented(argv[1], argv[2], argv[3])
    elif len(argv) == 2 and argv[0] == "wiring":
        wiring(argv[1])
    elif len(argv) >= 4 and argv[0] == "compare-metrics":
        extra, rest = [], argv[4:]
        while rest:
            if rest[0] != "--extra-expr" or len(rest) < 2:
                fail(f"unexpected arguments {rest}")
            extra.append(rest[1])
            rest = rest[2:]
        compare_metrics(argv[1], argv[2], argv[3], extra)
    else:
        fail(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
