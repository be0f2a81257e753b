{{/* Names and labels (app.kubernetes.io/*). */}}

{{- define "tickrail.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's prefix for every object; component suffixes stay within 63 characters. */}}
{{- define "tickrail.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tickrail.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels; call with (dict "root" $ "component" "data-plane" "group" "") */}}
{{- define "tickrail.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tickrail.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- with .group }}
tickrail/executor-group: {{ . }}
{{- end }}
{{- end }}

{{/* Every label; same argument as tickrail.selectorLabels. */}}
{{- define "tickrail.labels" -}}
helm.sh/chart: {{ include "tickrail.chart" .root }}
{{ include "tickrail.selectorLabels" . }}
app.kubernetes.io/part-of: tickrail
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{- define "tickrail.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tickrail.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Where the settings file and the policy directory are mounted. */}}
{{- define "tickrail.configPath" -}}/etc/tickrail/tickrail.yaml{{- end }}
{{- define "tickrail.policiesPath" -}}/etc/tickrail/policies{{- end }}

{{- define "tickrail.policiesEnabled" -}}
{{- if and .Values.policies.files .Values.policies.existingConfigMap }}
{{- fail "policies: set files or existingConfigMap, not both" }}
{{- end }}
{{- if or .Values.policies.files .Values.policies.existingConfigMap }}true{{ end }}
{{- end }}

{{/*
The tickrail settings file: `config` verbatim (the schema admits only real
settings), plus the policy directory when policies are configured.
*/}}
{{- define "tickrail.settings" -}}
{{- include "tickrail.requireUrls" . }}
{{- $settings := deepCopy .Values.config }}
{{- if include "tickrail.policiesEnabled" . }}
{{- $_ := set $settings "policies" (list (include "tickrail.policiesPath" .)) }}
{{- end }}
{{- toYaml $settings }}
{{- end }}

{{/*
The cloud profile has no default for its four URLs: refuse to render without
them (every workload includes the settings, so every render checks), naming
each missing one, instead of deploying placeholders that cannot connect.
*/}}
{{- define "tickrail.requireUrls" -}}
{{- $missing := list }}
{{- range $name := list "bus_url" "store_url" "blob_url" "kv_url" }}
{{- if not (index $.Values.config $name) }}
{{- $missing = append $missing (printf "config.%s" $name) }}
{{- end }}
{{- end }}
{{- if $missing }}
{{- fail (printf "%s required: the cloud profile has no default (e.g. --set config.bus_url=kafka://kafka:9092,config.store_url=postgresql://tickrail@postgres:5432/tickrail,config.blob_url=s3://my-bucket,config.kv_url=redis://redis:6379/0; see values.yaml)" (join ", " $missing)) }}
{{- end }}
{{- end }}

{{/*
A component's value of a map that is overridden field by field (image,
podDisruptionBudget, autoscaling): its own fields over the shared default's.
Call with (dict "values" $v "defaults" $d "key" "autoscaling"); returns YAML.
*/}}
{{- define "tickrail.merged" -}}
{{- /* Not sprig's merge: it would take the default's `true` over an own `false`. */}}
{{- $out := deepCopy (index .defaults .key | default dict) }}
{{- range $k, $v := (index .values .key | default dict) }}
{{- $_ := set $out $k $v }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/*
terminationGracePeriodSeconds for one component: its own or the shared value,
which must exceed shutdown_grace_s, else shutdown_grace_s + 15 s (time to
drain, commit offsets and close after in-flight work is done).
Call with (dict "root" $ "values" .Values.dataPlane "where" "dataPlane").
*/}}
{{- define "tickrail.terminationGrace" -}}
{{- $grace := float64 .root.Values.config.shutdown_grace_s }}
{{- $set := .values.terminationGracePeriodSeconds | default .root.Values.defaults.terminationGracePeriodSeconds }}
{{- if $set }}
{{- if le (float64 $set) $grace }}
{{- fail (printf "%s.terminationGracePeriodSeconds (%v) must be greater than config.shutdown_grace_s (%v), or Kubernetes kills in-flight work" .where $set $grace) }}
{{- end }}
{{- int $set }}
{{- else }}
{{- add (int (ceil $grace)) 15 }}
{{- end }}
{{- end }}

{{/* Credentials, only as references to existing Secrets. Pass (dict "root" $ "only" "postgres") to limit. */}}
{{- define "tickrail.credentialEnv" -}}
{{- $c := .root.Values.credentials }}
{{- $m := .root.Values.migration }}
{{- if and (eq .only "postgres") $m.existingSecret }}
{{- /* The migration connects as the owner role, with the owner's password. */}}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $m.existingSecret }}
      key: {{ $m.passwordKey }}
{{- else }}
{{- with $c.postgres.existingSecret }}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $c.postgres.passwordKey }}
{{- end }}
{{- end }}
{{- if and (eq .only "postgres") $m.storeUrl }}
- name: TICKRAIL_STORE_URL
  value: {{ $m.storeUrl | quote }}
{{- end }}
{{- /* Signs and checks dispatched inputs: never given to executors (services/dispatch.py). */}}
{{- if and .dispatch $c.dispatch.existingSecret }}
- name: TICKRAIL_DISPATCH_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $c.dispatch.existingSecret }}
      key: {{ $c.dispatch.key }}
{{- end }}
{{- if ne .only "postgres" }}
{{- with $c.redis.existingSecret }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $c.redis.passwordKey }}
{{- end }}
{{- with $c.aws.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $c.aws.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $c.aws.secretAccessKeyKey }}
{{- if $c.aws.sessionTokenKey }}
- name: AWS_SESSION_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $c.aws.sessionTokenKey }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The environment variable `tickrail serve --token TENANT=VAR` reads for one tenant. */}}
{{- define "tickrail.tokenEnvName" -}}
{{- printf "TICKRAIL_TOKEN_%s" (regexReplaceAll "[^A-Z0-9]" (upper .) "_") }}
{{- end }}

{{/* Graphs the API serves: api.graphs, else every executor group's graphs. */}}
{{- define "tickrail.apiGraphs" -}}
{{- $graphs := .Values.api.graphs }}
{{- if not $graphs }}
{{- range .Values.executors }}
{{- $graphs = concat $graphs .graphs }}
{{- end }}
{{- end }}
{{- toJson (uniq $graphs) }}
{{- end }}
