//! The server testee behind axum (feature `axum`): `axum::serve` with a route that takes every
//! path through `ws_tokio::axum::WebSocketUpgrade` and echoes as [`crate::testee::echo`]
//! does, with the same settings, so that kosoku judges the axum-hosted endpoint.

use axum::Router;
use axum::routing::any;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use ws_tokio::Config;
use ws_tokio::axum::WebSocketUpgrade;

/// The axum app: any path, any method (HTTP/1.1 upgrades and HTTP/2 extended CONNECT).
pub fn app(config: Config) -> Router {
    Router::new().fallback(any(move |ws: WebSocketUpgrade| async move {
        ws.config(config).on_upgrade(|socket| async move {
            let mut ws = socket.into_inner();
            let _ = crate::testee::echo(&mut ws).await;
        })
    }))
}

/// Serves [`app`] on `listener` until it fails, with `TCP_NODELAY` as the plain testee.
pub async fn serve(listener: TcpListener, config: Config) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app(config)).await
}
