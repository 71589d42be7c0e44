# What examples/kind passes.
image_tag            = "e2e"
image_pull_policy    = "Never"
database             = { mode = "bundled" }
replicas             = { gateway = 1, identity = 1, operator = 1 }
gateway_service_type = "NodePort"
gateway_node_port    = 30455
identity_public_url  = "http://127.0.0.1:4455/.ory/kratos/public/"
