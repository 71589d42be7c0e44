variable "namespace" {
  description = "Namespace for every Portcullis object (and its generated Secrets)."
  type        = string
  default     = "portcullis"
  nullable    = false
}

variable "create_namespace" {
  description = "Create the namespace. Set to false when it is managed elsewhere."
  type        = bool
  default     = true
  nullable    = false
}

variable "release_name" {
  description = "Helm release name; object names start with it."
  type        = string
  default     = "portcullis"
  nullable    = false
}

variable "chart" {
  description = "Chart to install: a local path, an OCI reference or a chart name in `chart_repository`. Defaults to the chart next to this module."
  type        = string
  default     = null
}

variable "chart_repository" {
  description = "Helm repository URL when `chart` is a chart name."
  type        = string
  default     = null
}

variable "chart_version" {
  description = "Chart version constraint (ignored for a local chart path)."
  type        = string
  default     = null
}

variable "image_registry" {
  description = "Registry for all Portcullis images (chart `global.imageRegistry`); null keeps the chart's (ghcr.io)."
  type        = string
  default     = null
}

variable "image_tag" {
  description = "Tag of the gateway, identity and operator images; null means the chart's appVersion."
  type        = string
  default     = null
}

variable "image_pull_policy" {
  description = "imagePullPolicy of the Portcullis images."
  type        = string
  default     = "IfNotPresent"
  nullable    = false

  validation {
    condition     = contains(["Always", "IfNotPresent", "Never"], var.image_pull_policy)
    error_message = "image_pull_policy must be Always, IfNotPresent or Never."
  }
}

variable "replicas" {
  description = "Replica counts. Identity needs an external or bundled database for more than one."
  type = object({
    gateway  = optional(number, 2)
    identity = optional(number, 2)
    operator = optional(number, 1)
  })
  default  = {}
  nullable = false

  validation {
    condition     = alltrue([for n in values(var.replicas) : n >= 0 && floor(n) == n])
    error_message = "replicas must be whole numbers >= 0."
  }
}

variable "public_host" {
  description = "Host name of the gateway Ingress (e.g. app.example.com); null renders no Ingress."
  type        = string
  default     = null
}

variable "ingress_class_name" {
  description = "IngressClass of the gateway Ingress."
  type        = string
  default     = null
}

variable "tls_secret_name" {
  description = "TLS Secret for `public_host` (e.g. made by cert-manager); null serves the Ingress without TLS."
  type        = string
  default     = null
}

variable "gateway_service_type" {
  description = "Service type of the gateway (ClusterIP, NodePort or LoadBalancer)."
  type        = string
  default     = "ClusterIP"
  nullable    = false

  validation {
    condition     = contains(["ClusterIP", "NodePort", "LoadBalancer"], var.gateway_service_type)
    error_message = "gateway_service_type must be ClusterIP, NodePort or LoadBalancer."
  }
}

variable "gateway_node_port" {
  description = "Fixed node port of the gateway proxy when `gateway_service_type` is NodePort."
  type        = number
  default     = null
}

variable "identity_public_url" {
  description = "Public base URL of the identity service as browsers reach it; null means the in-cluster URL."
  type        = string
  default     = null
}

variable "allowed_return_urls" {
  description = "URLs the identity service may redirect to after a flow (selfservice.allowed_return_urls)."
  type        = list(string)
  default     = []
  nullable    = false
}

variable "id_token_issuer_url" {
  description = "`issuer_url` of the id_token mutator; null means https://<public_host>/ or the in-cluster proxy URL."
  type        = string
  default     = null
}

variable "signing_key_algorithm" {
  description = "Algorithm of the generated id_token signing key: ES256 (P-256) or RS256 (RSA 2048)."
  type        = string
  default     = "ES256"
  nullable    = false

  validation {
    condition     = contains(["ES256", "RS256"], var.signing_key_algorithm)
    error_message = "signing_key_algorithm must be ES256 or RS256."
  }
}

variable "database" {
  description = <<-EOT
    Identity database. mode = "external" (PostgreSQL at `dsn`, or the `dsn` key of
    `existing_secrets.identity`), "bundled" (the chart's single-pod PostgreSQL, evaluation only) or
    "sqlite" (a pod-local file, one replica, evaluation only).
  EOT
  type = object({
    mode = string
    dsn  = optional(string)
  })
  default  = { mode = "bundled" }
  nullable = false

  validation {
    condition     = contains(["external", "bundled", "sqlite"], var.database.mode)
    error_message = "database.mode must be external, bundled or sqlite."
  }
}

variable "existing_secrets" {
  description = <<-EOT
    Names of Secrets you manage yourself; for each one left null the module generates the Secret.
    identity: keys dsn, secretsCookie, secretsCipher (32 characters), secretsDefault.
    signing_key: key signing-key.pem (PEM private key) or jwks.json (set signing_key_file).
    stream_token: key token.
  EOT
  type = object({
    identity     = optional(string)
    signing_key  = optional(string)
    stream_token = optional(string)
  })
  default  = {}
  nullable = false
}

variable "signing_key_file" {
  description = "Key inside `existing_secrets.signing_key`: signing-key.pem or jwks.json."
  type        = string
  default     = "signing-key.pem"
  nullable    = false
}

variable "migrate_oathkeeper_rules" {
  description = "Also reconcile Oathkeeper-Maester's rules.oathkeeper.ory.sh objects (operator --oathkeeper-compat)."
  type        = bool
  default     = false
  nullable    = false
}

variable "watch_namespaces" {
  description = "Namespaces the operator watches; empty means the whole cluster."
  type        = list(string)
  default     = []
  nullable    = false
}

variable "service_monitor" {
  description = "Render prometheus-operator ServiceMonitors (needs the monitoring.coreos.com CRDs)."
  type        = bool
  default     = false
  nullable    = false
}

variable "network_policy" {
  description = "Render NetworkPolicies (only the gateway reaches upstreams; only gateway and operator reach identity admin)."
  type        = bool
  default     = true
  nullable    = false
}

variable "autoscaling" {
  description = "HPA (and PDB) for gateway and identity instead of fixed replicas."
  type = object({
    enabled      = optional(bool, false)
    min_replicas = optional(number, 2)
    max_replicas = optional(number, 10)
  })
  default  = {}
  nullable = false
}

variable "extra_values" {
  description = "Raw YAML values documents appended after the module's own (later wins)."
  type        = list(string)
  default     = []
  nullable    = false
}

variable "helm_timeout" {
  description = "Seconds Helm waits for the release (including the migration Job)."
  type        = number
  default     = 600
  nullable    = false
}

variable "wait" {
  description = "Wait until every Deployment is ready before marking the release successful."
  type        = bool
  default     = true
  nullable    = false
}
