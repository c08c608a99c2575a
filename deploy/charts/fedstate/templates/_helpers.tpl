{{/* Common labels; `component` is the binary's name. */}}
{{- define "fedstate.labels" -}}
app.kubernetes.io/name: {{ .component }}
app.kubernetes.io/part-of: fedstate
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "fedstate.selector" -}}
app.kubernetes.io/name: {{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/* registry/repository:tag */}}
{{- define "fedstate.image" -}}
{{- $v := .root.Values -}}
{{- printf "%s/%s:%s" $v.image.registry .image.repository (default .root.Chart.AppVersion $v.image.tag) -}}
{{- end -}}

{{/* The kubeconfig Secret of one component: its own value, else karmada.kubeconfigSecret. */}}
{{- define "fedstate.kubeconfigSecret" -}}
{{- $own := .own | default dict -}}
{{- $all := .root.Values.karmada.kubeconfigSecret -}}
name: {{ $own.name | default $all.name }}
key: {{ $own.key | default $all.key }}
{{- end -}}

{{/* Flags every binary shares: Karmada apiserver, identity, leader election, logs, admin. */}}
{{- define "fedstate.commonArgs" -}}
{{- $v := .root.Values -}}
{{- $secret := include "fedstate.kubeconfigSecret" . | fromYaml -}}
- --kubeconfig=/etc/karmada/config/{{ $secret.key }}
{{- if $v.karmada.impersonate }}
- --as=system:serviceaccount:{{ $v.karmada.namespace }}:{{ .component }}
{{- end }}
- --kube-api-qps={{ $v.kubeAPI.qps }}
- --kube-api-burst={{ $v.kubeAPI.burst }}
- --leader-elect={{ $v.leaderElection.enabled }}
- --leader-elect-resource-name={{ .component }}
- --leader-elect-resource-namespace={{ $v.karmada.namespace }}
- --leader-elect-lease-duration={{ $v.leaderElection.leaseDuration }}
- --leader-elect-renew-deadline={{ $v.leaderElection.renewDeadline }}
- --leader-elect-retry-period={{ $v.leaderElection.retryPeriod }}
- --admin-addr=0.0.0.0:{{ $v.adminPort }}
- --logging-format={{ $v.logging.format }}
{{- end -}}

{{- define "fedstate.env" -}}
- name: RUST_LOG
  value: {{ .root.Values.logging.level | quote }}
- name: POD_NAME
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
{{- end -}}

{{- define "fedstate.probes" -}}
ports:
  - {name: admin, containerPort: {{ .root.Values.adminPort }}, protocol: TCP}
livenessProbe:
  httpGet: {path: /healthz, port: admin}
  periodSeconds: 10
readinessProbe:
  httpGet: {path: /readyz, port: admin}
  periodSeconds: 5
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: {drop: [ALL]}
{{- end -}}

{{- define "fedstate.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{/* The `rules` of the ClusterRole in a file of deploy/<component>/rbac.yaml (the single source
of each component's permissions; manager/tests/scenarios.rs checks the manager's against every
request it makes). */}}
{{- define "fedstate.clusterRoleRules" -}}
{{- range $doc := regexSplit "(?m)^---\\s*$" (.root.Files.Get .file) -1 }}
{{- $o := fromYaml $doc }}
{{- if and $o (eq (get $o "kind") "ClusterRole") }}
{{- toYaml $o.rules }}
{{- end }}
{{- end }}
{{- end -}}
