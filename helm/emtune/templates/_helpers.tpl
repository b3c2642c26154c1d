{{/* Names, labels, images and the security settings every pod shares. */}}

{{- define "emtune.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "emtune.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "emtune.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "emtune.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "emtune.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "emtune.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: emtune
{{- end }}

{{/* Selector labels of one component: (dict "ctx" $ "component" "dashboard") */}}
{{- define "emtune.selectorLabels" -}}
app.kubernetes.io/name: {{ include "emtune.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* An emtune image: (dict "ctx" $ "name" "dashboard") */}}
{{- define "emtune.image" -}}
{{- printf "%s/emtune-%s:%s" (trimSuffix "/" .ctx.Values.image.registry) .name (default .ctx.Chart.AppVersion .ctx.Values.image.tag) }}
{{- end }}

{{/* "<fullname>-<suffix>" within Kubernetes' 63 characters: the release part is shortened, the suffix kept, so
names stay distinct and a Job's name still fits the job-name label its pods get. */}}
{{- define "emtune.named" -}}
{{- printf "%s-%s" (include "emtune.fullname" .ctx | trunc (int (sub 62 (len .suffix))) | trimSuffix "-") .suffix }}
{{- end }}

{{- define "emtune.serviceAccount" -}}
{{- include "emtune.named" (dict "ctx" .ctx "suffix" .role) }}
{{- end }}

{{/* Secret names: the existing one when named, else the one the chart renders (or "" when neither). */}}
{{- define "emtune.s3Secret" -}}
{{- if .Values.secrets.s3.existingSecret }}{{ .Values.secrets.s3.existingSecret }}{{- else if .Values.secrets.s3.accessKeyId }}{{ include "emtune.named" (dict "ctx" . "suffix" "s3") }}{{- end }}
{{- end }}
{{- define "emtune.wandbSecret" -}}
{{- if .Values.secrets.wandb.existingSecret }}{{ .Values.secrets.wandb.existingSecret }}{{- else if .Values.secrets.wandb.apiKey }}{{ include "emtune.named" (dict "ctx" . "suffix" "wandb") }}{{- end }}
{{- end }}
{{- define "emtune.kfpTokenSecret" -}}
{{- if .Values.secrets.kfpToken.existingSecret }}{{ .Values.secrets.kfpToken.existingSecret }}{{- else if .Values.secrets.kfpToken.value }}{{ include "emtune.named" (dict "ctx" . "suffix" "kfp-token") }}{{- end }}
{{- end }}
{{/* The dashboard token Secret always exists with auth token: named, given, or generated once. */}}
{{- define "emtune.dashboardTokenSecret" -}}
{{- default (include "emtune.named" (dict "ctx" . "suffix" "dashboard-token")) .Values.secrets.dashboardToken.existingSecret }}
{{- end }}

{{/* The restricted Pod Security Standard, for every pod and container the chart creates. */}}
{{- define "emtune.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurityContext.runAsUser }}
runAsGroup: {{ .Values.podSecurityContext.runAsGroup }}
fsGroup: {{ .Values.podSecurityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "emtune.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end }}

{{/* KFP access: the bearer token Secret, or in multi-user KFP the projected service-account token. */}}
{{- define "emtune.kfpEnv" -}}
- name: EMTUNE_KFP_HOST
  value: {{ .Values.kfp.host | quote }}
- name: EMTUNE_KFP_UI_URL
  value: {{ .Values.kfp.uiUrl | quote }}
{{- if .Values.kfp.multiUser }}
- name: EMTUNE_KFP_NAMESPACE
  value: {{ .Release.Namespace | quote }}
{{- end }}
{{- with include "emtune.kfpTokenSecret" . }}
- name: EMTUNE_KFP_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.secrets.kfpToken.key }}
{{- end }}
{{- end }}

{{- define "emtune.kfpTokenVolume" -}}
{{- if .Values.kfp.multiUser }}
- name: kfp-token
  projected:
    sources:
      - serviceAccountToken:
          path: token
          audience: pipelines.kubeflow.org
          expirationSeconds: 7200
{{- end }}
{{- end }}

{{- define "emtune.kfpTokenMount" -}}
{{- if .Values.kfp.multiUser }}
- name: kfp-token
  mountPath: /var/run/secrets/kubeflow/pipelines
  readOnly: true
{{- end }}
{{- end }}

{{- define "emtune.imagePullSecrets" -}}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/* Accounts the runner Role is bound to (a JSON list): the chart's runner account (schedules run as it) and
KFP's default runner account, which runs what is started without one (submit, the dashboard): pipeline-runner
in standalone KFP, default-editor in a Kubeflow profile; runner.bindServiceAccounts replaces the latter. */}}
{{- define "emtune.runnerAccounts" -}}
{{- $default := ternary (list "default-editor") (list "pipeline-runner") .Values.kfp.multiUser }}
{{- $extra := ternary $default .Values.runner.bindServiceAccounts (kindIs "invalid" .Values.runner.bindServiceAccounts) }}
{{- prepend $extra (include "emtune.serviceAccount" (dict "ctx" . "role" "runner")) | uniq | toJson }}
{{- end }}
