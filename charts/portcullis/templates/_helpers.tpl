{{/*
Names, labels, images, security contexts and the secret wiring shared by every template.
*/}}

{{- define "portcullis.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "portcullis.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Object name of a component: <fullname>-<component>. Call with (list $ "gateway"). */}}
{{- define "portcullis.componentName" -}}
{{- $root := index . 0 }}
{{- printf "%s-%s" (include "portcullis.fullname" $root | trunc 50 | trimSuffix "-") (index . 1) }}
{{- end }}

{{- define "portcullis.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "portcullis.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: portcullis
{{- end }}

{{/* Selector labels of a component. Call with (list $ "gateway"). */}}
{{- define "portcullis.selectorLabels" -}}
{{- $root := index . 0 }}
app.kubernetes.io/name: {{ include "portcullis.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* All labels of a component's objects. Call with (list $ "gateway"). */}}
{{- define "portcullis.componentLabels" -}}
{{ include "portcullis.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* Image reference. Call with (list $ .Values.gateway.image). */}}
{{- define "portcullis.image" -}}
{{- $root := index . 0 }}
{{- $image := index . 1 }}
{{- $registry := default $image.registry $root.Values.global.imageRegistry }}
{{- $tag := default $root.Chart.AppVersion (toString (default "" $image.tag)) }}
{{- if $registry }}
{{- printf "%s/%s:%s" $registry $image.repository $tag }}
{{- else }}
{{- printf "%s:%s" $image.repository $tag }}
{{- end }}
{{- end }}

{{/* Pod security context: the chart-wide one with the component's merged over it. Call with (list $ $component). */}}
{{- define "portcullis.podSecurityContext" -}}
{{- $root := index . 0 }}
{{- toYaml (mustMergeOverwrite (deepCopy $root.Values.podSecurityContext) (deepCopy (default dict (index . 1).podSecurityContext))) }}
{{- end }}

{{- define "portcullis.securityContext" -}}
{{- $root := index . 0 }}
{{- toYaml (mustMergeOverwrite (deepCopy $root.Values.securityContext) (deepCopy (default dict (index . 1).securityContext))) }}
{{- end }}

{{/* Scheduling and pull secrets of a pod spec. Call with (list $ $component). */}}
{{- define "portcullis.podScheduling" -}}
{{- $root := index . 0 }}
{{- $c := index . 1 }}
{{- with $root.Values.global.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* httpGet probes. Call with (list $probes "port-name" "/alive" "/ready"). */}}
{{- define "portcullis.probes" -}}
{{- $p := index . 0 }}
{{- $port := index . 1 }}
livenessProbe:
  httpGet:
    path: {{ index . 2 }}
    port: {{ $port }}
  {{- toYaml $p.liveness | nindent 2 }}
readinessProbe:
  httpGet:
    path: {{ index . 3 }}
    port: {{ $port }}
  {{- toYaml $p.readiness | nindent 2 }}
startupProbe:
  httpGet:
    path: {{ index . 2 }}
    port: {{ $port }}
  {{- toYaml $p.startup | nindent 2 }}
{{- end }}

{{/* Secret names. */}}
{{- define "portcullis.identity.secretName" -}}
{{- default (include "portcullis.componentName" (list . "identity")) .Values.identity.secret.existingSecret }}
{{- end }}

{{- define "portcullis.gateway.signingKeySecretName" -}}
{{- default (include "portcullis.componentName" (list . "gateway-signing-key")) .Values.gateway.signingKey.existingSecret }}
{{- end }}

{{- define "portcullis.gateway.signingKeyFile" -}}
{{- if .Values.gateway.signingKey.existingSecret }}
{{- .Values.gateway.signingKey.existingSecretKey }}
{{- else if .Values.gateway.signingKey.jwks }}
{{- "jwks.json" }}
{{- else }}
{{- "signing-key.pem" }}
{{- end }}
{{- end }}

{{- define "portcullis.streamTokenSecretName" -}}
{{- default (include "portcullis.componentName" (list . "stream-token")) .Values.operator.streamToken.existingSecret }}
{{- end }}

{{- define "portcullis.postgresql.secretName" -}}
{{- default (include "portcullis.componentName" (list . "postgresql")) .Values.postgresql.existingSecret }}
{{- end }}

{{/* In-cluster URLs. */}}
{{- define "portcullis.identity.publicInternalUrl" -}}
{{- printf "http://%s.%s.svc:%v" (include "portcullis.componentName" (list . "identity-public")) .Release.Namespace .Values.identity.service.publicPort }}
{{- end }}

{{- define "portcullis.identity.adminInternalUrl" -}}
{{- printf "http://%s.%s.svc:%v" (include "portcullis.componentName" (list . "identity-admin")) .Release.Namespace .Values.identity.service.adminPort }}
{{- end }}

{{- define "portcullis.gateway.proxyInternalUrl" -}}
{{- printf "http://%s.%s.svc:%v" (include "portcullis.componentName" (list . "gateway")) .Release.Namespace .Values.gateway.service.proxyPort }}
{{- end }}

{{- define "portcullis.operator.streamUrl" -}}
{{- printf "http://%s.%s.svc:%v/v1/streams/%s" (include "portcullis.componentName" (list (index . 0) "operator")) (index . 0).Release.Namespace (index . 0).Values.operator.service.port (index . 1) }}
{{- end }}

{{/* "sqlite", "bundled" or "external": where the identity database lives. */}}
{{- define "portcullis.identity.databaseKind" -}}
{{- if .Values.postgresql.enabled }}
{{- "bundled" }}
{{- else if and (not .Values.identity.secret.existingSecret) (hasPrefix "sqlite" .Values.identity.dsn) }}
{{- "sqlite" }}
{{- else }}
{{- "external" }}
{{- end }}
{{- end }}

{{/* "job" or "initContainer". A hook Job cannot reach a database that the release itself creates. */}}
{{- define "portcullis.identity.migrationMode" -}}
{{- if eq (include "portcullis.identity.databaseKind" .) "external" }}
{{- .Values.identity.migration.mode }}
{{- else }}
{{- "initContainer" }}
{{- end }}
{{- end }}

{{/* Env vars carrying the identity's database DSN and secrets (never a ConfigMap). */}}
{{- define "portcullis.identity.secretEnv" -}}
{{- $secret := include "portcullis.identity.secretName" . }}
{{- if .Values.postgresql.enabled }}
- name: POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "portcullis.postgresql.secretName" . }}
      key: password
- name: DSN
  value: {{ printf "postgres://%s:$(POSTGRES_PASSWORD)@%s.%s.svc:5432/%s?sslmode=disable" .Values.postgresql.username (include "portcullis.componentName" (list . "postgresql")) .Release.Namespace .Values.postgresql.database | quote }}
{{- else }}
- name: DSN
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: dsn
{{- end }}
{{- end }}

{{/* The stream subscription env of gateway and identity. Call with (list $ "rules"). */}}
{{- define "portcullis.streamEnv" -}}
{{- $root := index . 0 }}
{{- if $root.Values.operator.enabled }}
- name: PORTCULLIS_STREAM_URL
  value: {{ include "portcullis.operator.streamUrl" . | quote }}
- name: PORTCULLIS_STREAM_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "portcullis.streamTokenSecretName" $root }}
      key: token
# The last good snapshot, on the pod's emptyDir, served while the operator is unreachable.
- name: PORTCULLIS_STREAM_CACHE
  value: {{ printf "/var/lib/portcullis/%s.snapshot.json" (index . 1) | quote }}
{{- end }}
{{- end }}

{{/* Reuse a key of an existing Secret (kept across upgrades), or a fresh value. Call with (list $secretOrNil "key" $fresh). Returns base64. */}}
{{- define "portcullis.keepOrGenerate" -}}
{{- $existing := index . 0 }}
{{- $key := index . 1 }}
{{- if and $existing $existing.data (hasKey $existing.data $key) }}
{{- index $existing.data $key }}
{{- else }}
{{- index . 2 | b64enc }}
{{- end }}
{{- end }}
