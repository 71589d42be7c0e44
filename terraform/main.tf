# Installs the Portcullis chart: namespace, generated Secrets (random_password, tls_private_key),
# and one helm_release whose values (values.tf) point at those Secrets, so no secret goes through
# Helm values.

locals {
  namespace = var.create_namespace ? kubernetes_namespace_v1.this[0].metadata[0].name : var.namespace
}

resource "kubernetes_namespace_v1" "this" {
  count = var.create_namespace ? 1 : 0

  metadata {
    name = var.namespace
    labels = {
      "app.kubernetes.io/part-of"          = "portcullis"
      "pod-security.kubernetes.io/enforce" = "restricted"
    }
  }
}

# Generated secrets live in the Terraform state in plain text: use an encrypted backend.
resource "random_password" "identity" {
  for_each = local.generate_identity ? toset(["cookie", "cipher", "default"]) : toset([])

  length  = 32 # SECRETS_CIPHER must be exactly 32 characters
  special = false
}

resource "random_password" "stream_token" {
  count = local.generate_stream_token ? 1 : 0

  length  = 48
  special = false
}

resource "tls_private_key" "signing_key" {
  count = local.generate_signing_key ? 1 : 0

  algorithm   = var.signing_key_algorithm == "ES256" ? "ECDSA" : "RSA"
  ecdsa_curve = "P256"
  rsa_bits    = 2048
}

resource "kubernetes_secret_v1" "identity" {
  count = local.generate_identity ? 1 : 0

  metadata {
    name      = local.secret_names.identity
    namespace = local.namespace
    labels    = { "app.kubernetes.io/part-of" = "portcullis" }
  }

  data = merge(
    {
      secretsCookie  = random_password.identity["cookie"].result
      secretsCipher  = random_password.identity["cipher"].result
      secretsDefault = random_password.identity["default"].result
    },
    var.database.mode == "bundled" ? {} : { dsn = local.identity_dsn },
  )
}

resource "kubernetes_secret_v1" "signing_key" {
  count = local.generate_signing_key ? 1 : 0

  metadata {
    name      = local.secret_names.signing_key
    namespace = local.namespace
    labels    = { "app.kubernetes.io/part-of" = "portcullis" }
  }

  data = {
    "signing-key.pem" = tls_private_key.signing_key[0].private_key_pem
  }
}

resource "kubernetes_secret_v1" "stream_token" {
  count = local.generate_stream_token ? 1 : 0

  metadata {
    name      = local.secret_names.stream_token
    namespace = local.namespace
    labels    = { "app.kubernetes.io/part-of" = "portcullis" }
  }

  data = {
    token = random_password.stream_token[0].result
  }
}

resource "helm_release" "this" {
  name       = var.release_name
  namespace  = local.namespace
  chart      = local.chart
  repository = var.chart_repository
  version    = var.chart_version

  values = local.values_documents

  timeout         = var.helm_timeout
  wait            = var.wait
  wait_for_jobs   = var.wait
  cleanup_on_fail = true

  depends_on = [
    kubernetes_secret_v1.identity,
    kubernetes_secret_v1.signing_key,
    kubernetes_secret_v1.stream_token,
  ]

  lifecycle {
    precondition {
      condition     = var.database.mode != "external" || var.database.dsn != null || var.existing_secrets.identity != null
      error_message = "database.mode = \"external\" needs database.dsn or existing_secrets.identity (a Secret with a dsn key)."
    }
    precondition {
      condition     = var.database.mode == "external" || var.database.dsn == null
      error_message = "database.dsn is only used with database.mode = \"external\"."
    }
  }
}
