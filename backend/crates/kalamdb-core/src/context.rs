//! Who is asking, from where, in which namespace: built by the API layer for
//! every request and handed to every handler.

use kalamdb_commons::{DEFAULT_NAMESPACE, NamespaceId, Role, UserId};
use std::net::IpAddr;

#[derive(Debug, Clone)]
pub struct ExecutionContext {
    pub user_id: UserId,
    pub username: String,
    pub role: Role,
    /// The session namespace: `USE ns` changes it for the rest of a request.
    pub namespace: NamespaceId,
    pub request_id: String,
    pub client_addr: Option<IpAddr>,
}

impl ExecutionContext {
    pub fn new(user_id: UserId, username: impl Into<String>, role: Role) -> Self {
        Self {
            user_id,
            username: username.into(),
            role,
            namespace: NamespaceId::new(DEFAULT_NAMESPACE),
            request_id: String::new(),
            client_addr: None,
        }
    }

    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = NamespaceId::new(namespace);
        self
    }

    pub fn with_request(mut self, request_id: impl Into<String>, client: Option<IpAddr>) -> Self {
        self.request_id = request_id.into();
        self.client_addr = client;
        self
    }
}
