//! What can go wrong talking to a server.

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The server could not be reached at all.
    #[error("could not connect to {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the request timed out")]
    Timeout,
    #[error("request failed: {0}")]
    Transport(reqwest::Error),
    /// The server answered with an error (its code and message).
    #[error("{code}: {message}")]
    Server {
        status: u16,
        code: String,
        message: String,
    },
    #[error("authentication: {0}")]
    Auth(String),
    /// A reply this client cannot read.
    #[error("unexpected reply: {0}")]
    Protocol(String),
    #[error("websocket: {0}")]
    WebSocket(String),
    #[error("{0}")]
    Config(String),
}

impl LinkError {
    /// The server's error code, for errors the server sent.
    pub fn code(&self) -> Option<&str> {
        match self {
            LinkError::Server { code, .. } => Some(code),
            _ => None,
        }
    }
}
