{{/* Name of the chart, or nameOverride. */}}
{{- define "hallpass.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every object's name: the release name, plus the chart name unless the release name
already holds it. `helm install hallpass` gives the names of config/default (hallpass-operator,
hallpass-webhook-service, ...). Object names append up to 28 characters, so it is cut at 35.
*/}}
{{- define "hallpass.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 35 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 35 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 35 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "hallpass.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "hallpass.labels" -}}
helm.sh/chart: {{ include "hallpass.chart" . }}
{{ include "hallpass.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels that select the operator's pods. SSO server pods are named hallpass-server, so the
webhook Service never selects them.
*/}}
{{- define "hallpass.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hallpass.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The operator's ServiceAccount. */}}
{{- define "hallpass.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-operator" (include "hallpass.fullname" .)) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator's image, also the default image of the SSO server pods it deploys. */}}
{{- define "hallpass.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "hallpass.webhookServiceName" -}}
{{- printf "%s-webhook-service" (include "hallpass.fullname" .) }}
{{- end }}

{{/*
The ValidatingWebhookConfiguration's name is fixed, not per release: the operator patches its
caBundle, and its ClusterRole (generated from the +kubebuilder:rbac marker in
internal/webhookcert) allows that on this one name only. So one release per cluster, as the
cluster-scoped CRDs require anyway.
*/}}
{{- define "hallpass.webhookConfigurationName" -}}
hallpass-validating-webhook-configuration
{{- end }}
