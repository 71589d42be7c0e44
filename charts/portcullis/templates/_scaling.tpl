{{/*
HorizontalPodAutoscaler, PodDisruptionBudget and Ingress shared by gateway and identity.
Each takes (list $ "component" $values) and renders nothing when disabled.
*/}}

{{- define "portcullis.hpa" -}}
{{- $root := index . 0 }}
{{- $name := index . 1 }}
{{- $a := (index . 2).autoscaling }}
{{- if $a.enabled }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "portcullis.componentName" (list $root $name) }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "portcullis.componentLabels" (list $root $name) | trim | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "portcullis.componentName" (list $root $name) }}
  minReplicas: {{ $a.minReplicas }}
  maxReplicas: {{ $a.maxReplicas }}
  metrics:
    {{- with $a.targetCPUUtilizationPercentage }}
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ . }}
    {{- end }}
    {{- with $a.targetMemoryUtilizationPercentage }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ . }}
    {{- end }}
{{- end }}
{{- end }}

{{- define "portcullis.pdb" -}}
{{- $root := index . 0 }}
{{- $name := index . 1 }}
{{- $p := (index . 2).pdb }}
{{- if $p.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "portcullis.componentName" (list $root $name) }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "portcullis.componentLabels" (list $root $name) | trim | nindent 4 }}
spec:
  {{- if not (kindIs "invalid" $p.maxUnavailable) }}
  maxUnavailable: {{ $p.maxUnavailable }}
  {{- else }}
  minAvailable: {{ $p.minAvailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "portcullis.selectorLabels" (list $root $name) | trim | nindent 6 }}
{{- end }}
{{- end }}

{{/* Call with (list $ "component" $ingressValues "service-name" "port-name"). */}}
{{- define "portcullis.ingress" -}}
{{- $root := index . 0 }}
{{- $name := index . 1 }}
{{- $i := index . 2 }}
{{- $service := index . 3 }}
{{- $port := index . 4 }}
{{- if $i.enabled }}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ include "portcullis.componentName" (list $root $name) }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "portcullis.componentLabels" (list $root $name) | trim | nindent 4 }}
  {{- with $i.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- with $i.className }}
  ingressClassName: {{ . }}
  {{- end }}
  {{- with $i.tls }}
  tls:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  rules:
    {{- range $i.hosts }}
    - host: {{ .host | quote }}
      http:
        paths:
          {{- range .paths }}
          - path: {{ .path }}
            pathType: {{ .pathType }}
            backend:
              service:
                name: {{ $service }}
                port:
                  name: {{ $port }}
          {{- end }}
    {{- end }}
{{- end }}
{{- end }}

{{/* Call with (list $ "component" "service-name-suffix" "port-name" "/path"). */}}
{{- define "portcullis.serviceMonitor" -}}
{{- $root := index . 0 }}
{{- $name := index . 1 }}
{{- $sm := $root.Values.serviceMonitor }}
{{- if $sm.enabled }}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "portcullis.componentName" (list $root $name) }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "portcullis.componentLabels" (list $root $name) | trim | nindent 4 }}
    {{- with $sm.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "portcullis.selectorLabels" (list $root $name) | trim | nindent 6 }}
      portcullis.dev/service: {{ index . 2 }}
  namespaceSelector:
    matchNames:
      - {{ $root.Release.Namespace }}
  endpoints:
    - port: {{ index . 3 }}
      path: {{ index . 4 }}
      interval: {{ $sm.interval }}
      scrapeTimeout: {{ $sm.scrapeTimeout }}
{{- end }}
{{- end }}
