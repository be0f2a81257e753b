{{/*
The pod template every tickrail workload shares. A component's value replaces
the shared default (`defaults.*`) as a whole, except `image` (field by field)
and `extraEnv` (appended). Call with a dict:
  root       the chart context ($)
  component  app.kubernetes.io/component (data-plane, control-plane, executor, api, migrate)
  group      executor group name, or ""
  values     the component's values
  where      the component's values path, for error messages
  kind       role (HTTP health and metrics), api (gRPC), job (the migration: no
             probes, its own settings copy) or test (`helm test`: no probes)
  args       the tickrail command line after `tickrail`
  env        extra env vars (a list), or nil
*/}}
{{- define "tickrail.podTemplate" -}}
{{- $root := .root }}
{{- $d := $root.Values.defaults }}
{{- $v := .values }}
{{- $image := merge (deepCopy ($v.image | default dict)) $d.image }}
{{- $policies := and (eq .component "control-plane") (include "tickrail.policiesEnabled" $root) }}
{{- $tls := and (eq .kind "api") $root.Values.api.tls.existingSecret -}}
metadata:
  labels:
    {{- include "tickrail.labels" (dict "root" $root "component" .component "group" .group) | nindent 4 }}
    {{- with ($v.podLabels | default $d.podLabels) }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    {{- /* Settings are read once at start: a changed file must roll the pods. */}}
    checksum/config: {{ include "tickrail.settings" $root | sha256sum }}
    {{- if and (eq .kind "role") $root.Values.metrics.annotations }}
    prometheus.io/scrape: "true"
    prometheus.io/port: {{ $root.Values.config.http_port | quote }}
    prometheus.io/path: /metrics
    {{- end }}
    {{- with ($v.podAnnotations | default $d.podAnnotations) }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  {{- if eq .kind "job" }}
  restartPolicy: Never
  {{- with $v.serviceAccountName }}
  serviceAccountName: {{ . }}
  {{- end }}
  {{- else if eq .kind "test" }}
  restartPolicy: Never
  serviceAccountName: {{ include "tickrail.serviceAccountName" $root }}
  {{- else }}
  serviceAccountName: {{ include "tickrail.serviceAccountName" $root }}
  terminationGracePeriodSeconds: {{ include "tickrail.terminationGrace" (dict "root" $root "values" $v "where" .where) }}
  {{- end }}
  {{- /* tickrail never calls the Kubernetes API (IRSA/workload identity inject their own token). */}}
  automountServiceAccountToken: false
  {{- /* Service links would put *_PORT variables in the environment, and TICKRAIL_* ones are settings. */}}
  enableServiceLinks: false
  {{- with $d.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with ($v.podSecurityContext | default $d.podSecurityContext) }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: tickrail
      image: "{{ $image.repository }}:{{ $image.tag | default $root.Chart.AppVersion }}"
      imagePullPolicy: {{ $image.pullPolicy }}
      command: ["tickrail"]
      args:
        {{- toYaml .args | nindent 8 }}
      {{- $dispatch := has .component (list "data-plane" "control-plane" "api") }}
      {{- $env := include "tickrail.credentialEnv" (dict "root" $root "only" (ternary "postgres" "" (or (eq .kind "job") (eq .kind "test"))) "dispatch" $dispatch) | trim }}
      {{- $extra := concat (.env | default list) ($d.extraEnv | default list) ($v.extraEnv | default list) }}
      {{- if or $env $extra }}
      env:
        {{- with $env }}{{ . | nindent 8 }}{{ end }}
        {{- with $extra }}{{ toYaml . | nindent 8 }}{{ end }}
      {{- end }}
      {{- if eq .kind "role" }}
      ports:
        - name: http
          containerPort: {{ $root.Values.config.http_port }}
          protocol: TCP
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        {{- toYaml ($v.livenessProbe | default $d.livenessProbe) | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        {{- toYaml ($v.readinessProbe | default $d.readinessProbe) | nindent 8 }}
      {{- if eq .component "executor" }}
      {{- /* Graph imports can be slow: liveness starts counting once /healthz first answers. */}}
      startupProbe:
        httpGet:
          path: /healthz
          port: http
        {{- toYaml ($v.startupProbe | default $d.startupProbe) | nindent 8 }}
      {{- end }}
      {{- else if eq .kind "api" }}
      ports:
        - name: grpc
          containerPort: {{ $root.Values.api.port }}
          protocol: TCP
      {{- /* The kubelet's gRPC probe speaks plaintext only: with TLS, check the port is open. */}}
      {{- range $probe := list "livenessProbe" "readinessProbe" }}
      {{ $probe }}:
        {{- if $tls }}
        tcpSocket:
          port: grpc
        {{- else }}
        grpc:
          port: {{ $root.Values.api.port }}
        {{- end }}
        {{- toYaml (index $v $probe | default (index $d $probe)) | nindent 8 }}
      {{- end }}
      {{- end }}
      {{- with ($v.resources | default $d.resources) }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with ($v.securityContext | default $d.securityContext) }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: config
          mountPath: {{ include "tickrail.configPath" $root }}
          subPath: tickrail.yaml
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- if $policies }}
        {{- /* A directory, not subPath: Kubernetes updates it in place and tickrail reloads it. */}}
        - name: policies
          mountPath: {{ include "tickrail.policiesPath" $root }}
          readOnly: true
        {{- end }}
        {{- if $tls }}
        - name: tls
          mountPath: /etc/tickrail/tls
          readOnly: true
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "tickrail.fullname" $root }}{{ if eq .kind "job" }}-migrate{{ end }}
    - name: tmp
      emptyDir: {}
    {{- if $policies }}
    - name: policies
      configMap:
        name: {{ $root.Values.policies.existingConfigMap | default (printf "%s-policies" (include "tickrail.fullname" $root)) }}
    {{- end }}
    {{- if $tls }}
    - name: tls
      secret:
        secretName: {{ $tls }}
    {{- end }}
  {{- with ($v.nodeSelector | default $d.nodeSelector) }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with ($v.affinity | default $d.affinity) }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with ($v.tolerations | default $d.tolerations) }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/*
A Deployment around tickrail.podTemplate; same arguments, plus `name` (the
object name suffix) and `values.replicas` (default 1).
*/}}
{{- define "tickrail.deployment" -}}
{{- $selector := dict "root" .root "component" .component "group" .group -}}
{{- $d := .root.Values.defaults }}
{{- $name := printf "%s-%s" (include "tickrail.fullname" .root) .name }}
{{- $pdb := include "tickrail.merged" (dict "values" .values "defaults" $d "key" "podDisruptionBudget") | fromYaml }}
{{- $hpa := include "tickrail.merged" (dict "values" .values "defaults" $d "key" "autoscaling") | fromYaml -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  labels:
    {{- include "tickrail.labels" $selector | nindent 4 }}
spec:
  {{- /* With an autoscaler, the HPA owns the replica count (an upgrade must not reset it). */}}
  {{- if not $hpa.enabled }}
  replicas: {{ hasKey .values "replicas" | ternary .values.replicas 1 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "tickrail.selectorLabels" $selector | nindent 6 }}
  template:
    {{- include "tickrail.podTemplate" . | nindent 4 }}
{{- if $pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  labels:
    {{- include "tickrail.labels" $selector | nindent 4 }}
spec:
  {{- if not (kindIs "invalid" $pdb.minAvailable) }}
  minAvailable: {{ $pdb.minAvailable }}
  {{- else }}
  maxUnavailable: {{ $pdb.maxUnavailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "tickrail.selectorLabels" $selector | nindent 6 }}
{{- end }}
{{- if $hpa.enabled }}
{{- $resources := .values.resources | default $d.resources | default dict }}
{{- if not (dig "requests" "cpu" "" $resources) }}
{{- fail (printf "%s.autoscaling scales on CPU utilization, which needs resources.requests.cpu (on %s or defaults)" .where .where) }}
{{- end }}
{{- if gt (int $hpa.minReplicas) (int $hpa.maxReplicas) }}
{{- fail (printf "%s.autoscaling: minReplicas (%v) is above maxReplicas (%v)" .where $hpa.minReplicas $hpa.maxReplicas) }}
{{- end }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $name }}
  labels:
    {{- include "tickrail.labels" $selector | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $name }}
  minReplicas: {{ $hpa.minReplicas }}
  maxReplicas: {{ $hpa.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $hpa.targetCPUUtilizationPercentage }}
{{- end }}
{{- end }}
