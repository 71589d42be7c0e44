# The chart values the module installs with, computed from the variables alone (no resource
# references), so that charts/test.sh can evaluate them offline with `terraform console` and
# check them against the chart's values.schema.json.
locals {
  chart    = coalesce(var.chart, "${path.module}/../charts/portcullis")
  fullname = strcontains(var.release_name, "portcullis") ? var.release_name : "${var.release_name}-portcullis"

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

  # Every optional part is its own values document (Helm deep-merges them in order), so no
  # conditional has to unify two object shapes.
  values_base = {
    gateway = {
      replicaCount = var.replicas.gateway
      image        = { pullPolicy = var.image_pull_policy }
      signingKey = {
        existingSecret    = local.secret_names.signing_key
        existingSecretKey = local.generate_signing_key ? "signing-key.pem" : var.signing_key_file
      }
      idToken = { issuerUrl = local.issuer_url }
      service = { type = var.gateway_service_type }
      autoscaling = {
        enabled     = var.autoscaling.enabled
        minReplicas = var.autoscaling.min_replicas
        maxReplicas = var.autoscaling.max_replicas
      }
      pdb = { enabled = var.autoscaling.enabled || var.replicas.gateway > 1 }
    }
    identity = {
      replicaCount = var.database.mode == "sqlite" ? 1 : var.replicas.identity
      image        = { pullPolicy = var.image_pull_policy }
      secret       = { existingSecret = local.secret_names.identity }
      migration    = { mode = var.database.mode == "external" ? "job" : "initContainer" }
      publicUrl    = var.identity_public_url == null ? "" : var.identity_public_url
      autoscaling = {
        enabled     = var.autoscaling.enabled && var.database.mode != "sqlite"
        minReplicas = var.autoscaling.min_replicas
        maxReplicas = var.autoscaling.max_replicas
      }
      pdb = { enabled = var.database.mode != "sqlite" && (var.autoscaling.enabled || var.replicas.identity > 1) }
    }
    operator = {
      replicaCount     = var.replicas.operator
      image            = { pullPolicy = var.image_pull_policy }
      streamToken      = { existingSecret = local.secret_names.stream_token }
      oathkeeperCompat = var.migrate_oathkeeper_rules
      watchNamespaces  = var.watch_namespaces
    }
    postgresql     = { enabled = var.database.mode == "bundled" }
    serviceMonitor = { enabled = var.service_monitor }
    networkPolicy  = { enabled = var.network_policy }
  }

  values_documents = concat(
    [yamlencode(local.values_base)],
    var.image_registry == null ? [] : [yamlencode({ global = { imageRegistry = var.image_registry } })],
    var.image_tag == null ? [] : [yamlencode({
      for component in ["gateway", "identity", "operator"] : component => { image = { tag = var.image_tag } }
    })],
    var.gateway_node_port == null ? [] : [yamlencode({
      gateway = { service = { proxyNodePort = var.gateway_node_port } }
    })],
    var.public_host == null ? [] : [yamlencode({
      gateway = {
        ingress = {
          enabled   = true
          className = var.ingress_class_name == null ? "" : var.ingress_class_name
          hosts     = [{ host = var.public_host, paths = [{ path = "/", pathType = "Prefix" }] }]
          tls       = var.tls_secret_name == null ? [] : [{ hosts = [var.public_host], secretName = var.tls_secret_name }]
        }
      }
    })],
    length(var.allowed_return_urls) == 0 ? [] : [yamlencode({
      identity = { config = { selfservice = { allowed_return_urls = var.allowed_return_urls } } }
    })],
    var.extra_values,
  )
}
