//! Who is asking, from where, in which namespace: built by the API layer for
//! every request and handed to every handler.

use crate::table_store::TableStore;
use crate::write_set::Transaction;
use kalamdb_commons::{DEFAULT_NAMESPACE, NamespaceId, Role, UserId};
use std::net::IpAddr;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct ExecutionContext {
    pub user_id: UserId,
    pub username: String,
    pub role: Role,
    /// The session namespace: `USE ns` changes it for the rest of a request.
    pub namespace: NamespaceId,
    pub request_id: String,
    pub client_addr: Option<IpAddr>,
    /// Inside BEGIN … COMMIT: the transaction's view and staged writes
    /// (shared with an EXECUTE AS USER statement inside it).
    pub transaction: Option<Arc<Transaction>>,
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
            transaction: None,
        }
    }

    /// The row store this caller's statements read and write: the
    /// transaction's view inside BEGIN … COMMIT, the database otherwise.
    pub fn table_store(&self, database: &TableStore) -> TableStore {
        match &self.transaction {
            Some(tx) => database.through(tx.view()),
            None => database.clone(),
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
