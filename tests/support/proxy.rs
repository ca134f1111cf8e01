//! A TCP proxy that can cut every connection and refuse new ones for a while: from warroom's
//! side, exactly what a PostgreSQL restart looks like (connections reset, then refused, then
//! accepted again), without restarting the machine's PostgreSQL under the other tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    cut: broadcast::Sender<()>,
    /// Connections accepted and forwarded so far.
    pub forwarded: Arc<AtomicUsize>,
}

impl Proxy {
    /// Forward `127.0.0.1:<port>` to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = broadcast::channel(4);
        let forwarded = Arc::new(AtomicUsize::new(0));
        let (accept_up, accept_cut, accept_count) = (up.clone(), cut.clone(), forwarded.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accept_up.load(Ordering::SeqCst) {
                    // Down: the connection is closed at once, as a refused one would be.
                    drop(client);
                    continue;
                }
                accept_count.fetch_add(1, Ordering::SeqCst);
                let mut cut = accept_cut.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.recv() => {}
                    }
                });
            }
        });
        Proxy {
            port,
            up,
            cut,
            forwarded,
        }
    }

    /// Drop every open connection and refuse new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        let _ = self.cut.send(());
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}
