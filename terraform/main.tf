# Installs the Portcullis chart: namespace, generated Secrets (random_password, tls_private_key),
# and one helm_release whose values point at those Secrets, so no secret goes through Helm values.

locals {
  chart    = coalesce(var.chart, "${path.module}/../charts/portcullis")
  fullname = strcontains(var.release_name, "portcullis") ? var.release_name : "${var.release_name}-portcullis"

  namespace = var.create_namespace ? kubernetes_namespace_v1.this[0].metadata[0].name : var.namespace

  generate_identity     = var.existing_secrets.identity == null
  generate_signing_key  = var.existing_secrets.signing_key == null
  generate_stream_token = var.existing_secrets.stream_token == null

  secret_names = {
    identity     = coalesce(var.existing_secrets.identity, "${local.fullname}-identity-credentials")
    signing_key  = coalesce(var.existing_secrets.signing_key, "${local.fullname}-signing-key")
    stream_token = coalesce(var.existing_secrets.stream_token, "${local.fullname}-stream-token")
  }

  sqlite_dsn = "sqlite:///var/lib/portcullis/identity.sqlite?_fk=true&mode=rwc"
  # The bundled database's DSN is assembled by the chart from its own password Secret.
  identity_dsn = var.database.mode == "external" ? var.database.dsn : (var.database.mode == "sqlite" ? local.sqlite_dsn : "")

  gateway_service = "${local.fullname}-gateway"
  gateway_api_url = "http://${local.gateway_service}.${var.namespace}.svc:4456"
  issuer_url      = coalesce(var.id_token_issuer_url, var.public_host != null ? "https://${var.public_host}/" : "http://${local.gateway_service}.${var.namespace}.svc:4455")

  image = merge(
    { pullPolicy = var.image_pull_policy },
    var.image_tag == null ? {} : { tag = var.image_tag },
  )

  values = {
    global = var.image_registry == null ? {} : { imageRegistry = var.image_registry }
    gateway = {
      replicaCount = var.replicas.gateway
      image        = local.image
      signingKey = {
        existingSecret    = local.secret_names.signing_key
        existingSecretKey = local.generate_signing_key ? "signing-key.pem" : var.signing_key_file
      }
      idToken = { issuerUrl = local.issuer_url }
      service = merge(
        { type = var.gateway_service_type },
        var.gateway_node_port == null ? {} : { proxyNodePort = var.gateway_node_port },
      )
      ingress = var.public_host == null ? { enabled = false } : {
        enabled   = true
        className = coalesce(var.ingress_class_name, "")
        hosts     = [{ host = var.public_host, paths = [{ path = "/", pathType = "Prefix" }] }]
        tls       = var.tls_secret_name == null ? [] : [{ hosts = [var.public_host], secretName = var.tls_secret_name }]
      }
      autoscaling = {
        enabled     = var.autoscaling.enabled
        minReplicas = var.autoscaling.min_replicas
        maxReplicas = var.autoscaling.max_replicas
      }
      pdb = { enabled = var.autoscaling.enabled || var.replicas.gateway > 1 }
    }
    identity = {
      replicaCount = var.database.mode == "sqlite" ? 1 : var.replicas.identity
      image        = local.image
      secret       = { existingSecret = local.secret_names.identity }
      migration    = { mode = var.database.mode == "external" ? "job" : "initContainer" }
      publicUrl    = coalesce(var.identity_public_url, "")
      config = length(var.allowed_return_urls) == 0 ? {} : {
        selfservice = { allowed_return_urls = var.allowed_return_urls }
      }
      autoscaling = {
        enabled     = var.autoscaling.enabled && var.database.mode != "sqlite"
        minReplicas = var.autoscaling.min_replicas
        maxReplicas = var.autoscaling.max_replicas
      }
      pdb = { enabled = var.database.mode != "sqlite" && (var.autoscaling.enabled || var.replicas.identity > 1) }
    }
    operator = {
      replicaCount     = var.replicas.operator
      image            = local.image
      streamToken      = { existingSecret = local.secret_names.stream_token }
      oathkeeperCompat = var.migrate_oathkeeper_rules
      watchNamespaces  = var.watch_namespaces
    }
    postgresql     = { enabled = var.database.mode == "bundled" }
    serviceMonitor = { enabled = var.service_monitor }
    networkPolicy  = { enabled = var.network_policy }
  }
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

  values = concat([yamlencode(local.values)], var.extra_values)

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
