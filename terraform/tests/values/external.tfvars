# Production-like: external database, Ingress with TLS, autoscaling, existing signing key.
public_host        = "app.example.com"
ingress_class_name = "nginx"
tls_secret_name    = "app-tls"
database = {
  mode = "external"
  dsn  = "postgres://portcullis:secret@db.example.com:5432/portcullis?sslmode=require"
}
existing_secrets = {
  signing_key = "my-jwks"
}
signing_key_file         = "jwks.json"
allowed_return_urls      = ["https://app.example.com/"]
migrate_oathkeeper_rules = true
watch_namespaces         = ["apps"]
service_monitor          = true
autoscaling = {
  enabled = true
}
extra_values = ["gateway:\n  log:\n    level: debug\n"]
