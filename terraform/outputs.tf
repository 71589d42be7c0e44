output "namespace" {
  description = "Namespace Portcullis runs in."
  value       = helm_release.this.namespace
}

output "release_name" {
  description = "Helm release name."
  value       = helm_release.this.name
}

output "chart_version" {
  description = "Installed chart version."
  value       = helm_release.this.metadata.version
}

output "gateway_service_name" {
  description = "Name of the gateway Service (ports proxy 4455, api 4456, metrics 9000)."
  value       = local.gateway_service
}

output "gateway_proxy_url" {
  description = "In-cluster URL of the gateway proxy."
  value       = "http://${local.gateway_service}.${helm_release.this.namespace}.svc:4455"
}

output "gateway_decisions_url" {
  description = "In-cluster /decisions URL, e.g. for ingress-nginx's auth-url annotation."
  value       = "${local.gateway_api_url}/decisions"
}

output "jwks_url" {
  description = "In-cluster URL of the public keys that verify the gateway's id_tokens."
  value       = "${local.gateway_api_url}/.well-known/jwks.json"
}

output "identity_public_url" {
  description = "Public base URL of the identity service."
  value       = coalesce(var.identity_public_url, "http://${local.fullname}-identity-public.${helm_release.this.namespace}.svc:4433/")
}

output "identity_admin_url" {
  description = "In-cluster URL of the identity admin API (reachable only from gateway and operator pods when network_policy is on)."
  value       = "http://${local.fullname}-identity-admin.${helm_release.this.namespace}.svc:4434/"
}

output "secret_names" {
  description = "Secrets the release reads: identity, signing_key, stream_token."
  value       = local.secret_names
}

output "id_token_public_key_pem" {
  description = "Public half of the generated id_token signing key (null when an existing Secret is used)."
  value       = local.generate_signing_key ? tls_private_key.signing_key[0].public_key_pem : null
}
