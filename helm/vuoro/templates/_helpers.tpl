{{/* Names, labels and the pieces the router and adapter templates share. */}}

{{- define "vuoro.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name; objects add a component suffix, so it stays under 50 characters. */}}
{{- define "vuoro.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "vuoro.router.fullname" -}}
{{- printf "%s-router" (include "vuoro.fullname" .) }}
{{- end }}

{{- define "vuoro.adapters.fullname" -}}
{{- printf "%s-adapters" (include "vuoro.fullname" .) }}
{{- end }}

{{- define "vuoro.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "vuoro.labels" -}}
helm.sh/chart: {{ include "vuoro.chart" . }}
app.kubernetes.io/name: {{ include "vuoro.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component: call with (dict "ctx" $ "component" "router"). */}}
{{- define "vuoro.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vuoro.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "vuoro.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "vuoro.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "vuoro.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Whether the router runs against real brokers (not the embedded demo cluster). */}}
{{- define "vuoro.externalKafka" -}}
{{- if .Values.kafka.brokers }}true{{ end }}
{{- end }}

{{/* Refuses value combinations that would render a broken install. */}}
{{- define "vuoro.validate" -}}
{{- if not (include "vuoro.externalKafka" .) }}
{{- if gt (int .Values.router.replicaCount) 1 }}
{{- fail "router.replicaCount > 1 needs kafka.brokers: without brokers every router pod runs its own embedded Kafka cluster" }}
{{- end }}
{{- if .Values.adapters.enabled }}
{{- fail "adapters.enabled needs kafka.brokers: the adapters publish contacts to the router's Kafka cluster" }}
{{- end }}
{{- if .Values.topics.create }}
{{- fail "topics.create needs kafka.brokers" }}
{{- end }}
{{- end }}
{{- if and .Values.ingress.enabled (not .Values.adapters.enabled) }}
{{- fail "ingress.enabled needs adapters.enabled: the ingress routes to the adapters' listeners" }}
{{- end }}
{{- if ne (empty .Values.kafka.tls.certKey) (empty .Values.kafka.tls.keyKey) }}
{{- fail "kafka.tls.certKey and kafka.tls.keyKey go together (mutual TLS needs both)" }}
{{- end }}
{{- end }}

{{/* A TOML basic string: JSON's string escapes are all valid in TOML. */}}
{{- define "vuoro.tomlString" -}}
{{- toJson (toString .) }}
{{- end }}

{{/* A value as librdkafka text. Helm reads every YAML number as a float, which would print
1048576 as 1.048576e+06: whole numbers are printed as integers. */}}
{{- define "vuoro.scalar" -}}
{{- if and (kindIs "float64" .) (eq (float64 (int64 .)) .) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- end }}

{{/* Where the Kafka TLS Secret is mounted. */}}
{{- define "vuoro.kafkaTlsDir" -}}
/etc/vuoro/kafka-tls
{{- end }}

{{/* The [kafka] table shared by the router's and the adapters' config files. */}}
{{- define "vuoro.kafkaToml" -}}
[kafka]
{{- if .Values.kafka.brokers }}
brokers = {{ include "vuoro.tomlString" .Values.kafka.brokers }}
{{- end }}
topic_prefix = {{ include "vuoro.tomlString" .Values.kafka.topicPrefix }}
partitions = {{ int .Values.kafka.partitions }}
replication_factor = {{ int .Values.kafka.replicationFactor }}
{{- $properties := deepCopy .Values.kafka.properties }}
{{- with .Values.kafka.tls.existingSecret }}
{{- $dir := include "vuoro.kafkaTlsDir" $ }}
{{- $_ := set $properties "ssl.ca.location" (printf "%s/%s" $dir $.Values.kafka.tls.caKey) }}
{{- if $.Values.kafka.tls.certKey }}
{{- $_ := set $properties "ssl.certificate.location" (printf "%s/%s" $dir $.Values.kafka.tls.certKey) }}
{{- $_ := set $properties "ssl.key.location" (printf "%s/%s" $dir $.Values.kafka.tls.keyKey) }}
{{- end }}
{{- end }}
{{- if $properties }}
[kafka.properties]
{{- range $key, $value := $properties }}
{{ include "vuoro.tomlString" $key }} = {{ include "vuoro.tomlString" (include "vuoro.scalar" $value) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Environment shared by both processes: the Kafka SASL credentials. */}}
{{- define "vuoro.kafkaEnv" -}}
{{- with .Values.kafka.sasl.existingSecret }}
- name: VUORO_KAFKA_PROPERTY_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.kafka.sasl.usernameKey }}
- name: VUORO_KAFKA_PROPERTY_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.kafka.sasl.passwordKey }}
{{- end }}
{{- end }}

{{/* The Kafka TLS volume and its mount, when configured. */}}
{{- define "vuoro.kafkaTlsVolume" -}}
{{- with .Values.kafka.tls.existingSecret }}
- name: kafka-tls
  secret:
    secretName: {{ . }}
{{- end }}
{{- end }}

{{- define "vuoro.kafkaTlsMount" -}}
{{- if .Values.kafka.tls.existingSecret }}
- name: kafka-tls
  mountPath: {{ include "vuoro.kafkaTlsDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/* Pod anti-affinity by mode (soft, hard, none), unless an affinity is given outright.
Call with (dict "ctx" $ "component" "router" "mode" "soft" "affinity" {}). */}}
{{- define "vuoro.affinity" -}}
{{- if .affinity }}
{{- toYaml .affinity }}
{{- else if eq .mode "soft" }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "vuoro.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 12 }}
{{- else if eq .mode "hard" }}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "vuoro.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 10 }}
{{- end }}
{{- end }}

{{/* The PromQL label matchers of this release's router series. */}}
{{- define "vuoro.rulesSelector" -}}
{{- default (printf "job=%q, namespace=%q" (include "vuoro.router.fullname" .) .Release.Namespace) .Values.monitoring.prometheusRule.selector }}
{{- end }}

{{/* The listen host as it goes before ":port" (an IPv6 address in brackets). */}}
{{- define "vuoro.listenHost" -}}
{{- if contains ":" .Values.router.listenHost }}[{{ .Values.router.listenHost }}]{{ else }}{{ .Values.router.listenHost }}{{ end }}
{{- end }}
