//! A bare Pingora pass-through proxy with no pipeline: every request goes to one upstream.
//!
//! It is the floor the gateway is measured against in `bench/run.py`: whatever Portcullis costs
//! above this is ours. Configure with `FLOOR_LISTEN` (default 127.0.0.1:18083), `FLOOR_UPSTREAM`
//! (default 127.0.0.1:18080) and Pingora's own `-c <conf.yml>` (e.g. `threads: 1`).

use async_trait::async_trait;
use pingora::prelude::*;

// `--features mimalloc`: the gateway binary's allocator, for a like-for-like floor.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Floor {
    upstream: String,
}

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.upstream.as_str(),
            false,
            String::new(),
        )))
    }
}

fn main() {
    let listen = std::env::var("FLOOR_LISTEN").unwrap_or_else(|_| "127.0.0.1:18083".into());
    let upstream = std::env::var("FLOOR_UPSTREAM").unwrap_or_else(|_| "127.0.0.1:18080".into());
    let mut server = match Server::new(Some(Opt::parse_args())) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("pingora-floor: {e}");
            std::process::exit(2);
        }
    };
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, Floor { upstream });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever();
}
