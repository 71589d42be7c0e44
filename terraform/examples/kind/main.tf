# Installs Portcullis into a local kind cluster (see e2e/kind/kind.yaml) with the bundled
# PostgreSQL and images loaded with `kind load docker-image` under the tag "e2e".
#
#   kind create cluster --name portcullis-e2e --config ../../../e2e/kind/kind.yaml
#   terraform init && terraform apply

terraform {
  required_version = ">= 1.6"

  required_providers {
    helm = {
      source  = "hashicorp/helm"
      version = ">= 3.0, < 4.0"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = ">= 2.30, < 4.0"
    }
  }
}

variable "kubeconfig" {
  description = "Kubeconfig of the kind cluster."
  type        = string
  default     = "~/.kube/config"
}

variable "kube_context" {
  description = "Context of the kind cluster."
  type        = string
  default     = "kind-portcullis-e2e"
}

provider "kubernetes" {
  config_path    = pathexpand(var.kubeconfig)
  config_context = var.kube_context
}

provider "helm" {
  kubernetes = {
    config_path    = pathexpand(var.kubeconfig)
    config_context = var.kube_context
  }
}

module "portcullis" {
  source = "../.."

  namespace         = "portcullis"
  image_tag         = "e2e"
  image_pull_policy = "Never"
  database          = { mode = "bundled" }
  replicas = {
    gateway  = 1
    identity = 1
    operator = 1
  }
  gateway_service_type = "NodePort"
  gateway_node_port    = 30455
  identity_public_url  = "http://127.0.0.1:4455/.ory/kratos/public/"
  # kindnet does not enforce NetworkPolicy; keep them rendered anyway so they are applied.
  network_policy = true

  extra_values = [
    yamlencode({
      postgresql = { persistence = { enabled = false } }
    })
  ]
}

output "gateway_proxy_url" {
  description = "In-cluster gateway URL; from the host use http://127.0.0.1:4455 (kind port mapping)."
  value       = module.portcullis.gateway_proxy_url
}

output "secret_names" {
  description = "Secrets the module generated."
  value       = module.portcullis.secret_names
}
