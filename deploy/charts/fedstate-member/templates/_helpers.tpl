{{- define "member.labels" -}}
app.kubernetes.io/name: fedstate-mongo-agent
app.kubernetes.io/part-of: fedstate
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "member.selector" -}}
app.kubernetes.io/name: fedstate-mongo-agent
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The `rules` of the ClusterRole in deploy/agent/rbac.yaml (the single source of the agent's
permissions). */}}
{{- define "member.clusterRoleRules" -}}
{{- range $doc := regexSplit "(?m)^---\\s*$" (.Files.Get "files/rbac/agent.yaml") -1 }}
{{- $o := fromYaml $doc }}
{{- if and $o (eq (get $o "kind") "ClusterRole") }}
{{- toYaml $o.rules }}
{{- end }}
{{- end }}
{{- end -}}
