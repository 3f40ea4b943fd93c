//! CREATE USER, ALTER USER, DROP USER. Passwords are bcrypt-hashed on a
//! blocking thread; hashes never leave the metadata store. DROP USER is a
//! soft delete: the account can no longer log in, its rows stay until the
//! user-cleanup job purges them.

use super::{StatementHandler, StatementOptions, unexpected};
use crate::app_context::{AppContext, ROOT_USER};
use crate::context::ExecutionContext;
use crate::error::{CoreError, CoreResult};
use crate::meta_store::UserRecord;
use crate::result::StatementResult;
use async_trait::async_trait;
use kalamdb_commons::now_ms;
use kalamdb_commons::password::{Secret, validate_password};
use kalamdb_commons::{Role, UserId};
use kalamdb_sql::{SqlStatement, UserAuth, UserChange};
use kalamdb_store::Batch;

pub struct UserHandler;

/// `[a-z0-9_.@-]`, 1..=64 characters, starting with a letter or digit.
fn validate_username(name: &str) -> CoreResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.@-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(CoreError::InvalidSql(format!(
            "Invalid user name '{name}': use 1 to 64 lower-case letters, digits or _ . @ -"
        )))
    }
}

/// Only `system` may create, change or drop system accounts (or grant the
/// role).
fn check_may_manage(ctx: &ExecutionContext, role: Role) -> CoreResult<()> {
    if role == Role::System && ctx.role != Role::System {
        return Err(CoreError::PermissionDenied(format!(
            "Role '{}' may not manage system users",
            ctx.role
        )));
    }
    Ok(())
}

async fn hash(app: &AppContext, password: Secret) -> CoreResult<String> {
    validate_password(&password.0).map_err(CoreError::InvalidParameter)?;
    let cost = app.options.bcrypt_cost;
    tokio::task::spawn_blocking(move || kalamdb_commons::password::hash_password(&password.0, cost))
        .await
        .map_err(|e| CoreError::Internal(format!("hashing task failed: {e}")))?
        .map_err(|e| CoreError::Internal(format!("hashing failed: {e}")))
}

fn live_user(app: &AppContext, name: &str) -> CoreResult<Option<UserRecord>> {
    Ok(app.meta.user(name)?.filter(|u| u.deleted_at.is_none()))
}

fn commit(app: &AppContext, user: &UserRecord) -> CoreResult<()> {
    let mut batch = Batch::new();
    app.meta.put_user(&mut batch, user)?;
    app.meta.backend().write(batch)?;
    app.meta.users_changed();
    Ok(())
}

#[async_trait]
impl StatementHandler for UserHandler {
    async fn execute(
        &self,
        app: &AppContext,
        ctx: &mut ExecutionContext,
        statement: SqlStatement,
        _options: &StatementOptions<'_>,
    ) -> CoreResult<StatementResult> {
        match statement {
            SqlStatement::CreateUser {
                name,
                if_not_exists,
                auth,
                role,
                email,
                allow_remote,
            } => {
                validate_username(&name)?;
                check_may_manage(ctx, role)?;
                let password_hash = match auth {
                    UserAuth::Password(p) => Some(hash(app, p).await?),
                    UserAuth::Internal => None,
                };
                let _ddl = app.ddl_lock.lock().await;
                if live_user(app, &name)?.is_some() {
                    return if if_not_exists {
                        Ok(StatementResult::message(format!(
                            "User '{name}' already exists"
                        )))
                    } else {
                        Err(CoreError::AlreadyExists(format!(
                            "User '{name}' already exists"
                        )))
                    };
                }
                let now = now_ms();
                let user = UserRecord {
                    user_id: UserId::new(format!("u_{:x}", app.snowflake.next_id())),
                    username: name.clone(),
                    role,
                    password_hash,
                    email,
                    allow_remote,
                    created_at: now,
                    updated_at: now,
                    deleted_at: None,
                    token_generation: 0,
                };
                commit(app, &user)?;
                Ok(StatementResult::message(format!("User '{name}' created")))
            }
            SqlStatement::AlterUser { name, change } => {
                let new_hash = match &change {
                    UserChange::Password(p) => Some(hash(app, p.clone()).await?),
                    _ => None,
                };
                let _ddl = app.ddl_lock.lock().await;
                let mut user = live_user(app, &name)?
                    .ok_or_else(|| CoreError::Execution(format!("User '{name}' does not exist")))?;
                check_may_manage(ctx, user.role)?;
                match change {
                    UserChange::Password(_) => {
                        user.password_hash = new_hash;
                        // Tokens issued under the old password stop working.
                        user.token_generation += 1;
                    }
                    UserChange::Role(role) => {
                        check_may_manage(ctx, role)?;
                        if name == ROOT_USER && role != Role::System {
                            return Err(CoreError::PermissionDenied(
                                "The root user keeps the system role".into(),
                            ));
                        }
                        user.role = role;
                        user.token_generation += 1;
                    }
                    UserChange::Email(email) => user.email = Some(email),
                    UserChange::AllowRemote(allow) => user.allow_remote = allow,
                }
                user.updated_at = now_ms();
                commit(app, &user)?;
                Ok(StatementResult::message(format!("User '{name}' altered")))
            }
            SqlStatement::DropUser { name, if_exists } => {
                if name == ROOT_USER {
                    return Err(CoreError::PermissionDenied(
                        "The root user cannot be dropped".into(),
                    ));
                }
                let _ddl = app.ddl_lock.lock().await;
                let Some(mut user) = live_user(app, &name)? else {
                    return if if_exists {
                        Ok(StatementResult::message(format!(
                            "User '{name}' does not exist"
                        )))
                    } else {
                        Err(CoreError::Execution(format!(
                            "User '{name}' does not exist"
                        )))
                    };
                };
                check_may_manage(ctx, user.role)?;
                user.deleted_at = Some(now_ms());
                user.updated_at = now_ms();
                // The account and its place in the UserCleanup list commit
                // together.
                let mut batch = Batch::new();
                app.meta.put_user(&mut batch, &user)?;
                app.meta.put_dropped_user(&mut batch, &user)?;
                app.meta.backend().write(batch)?;
                app.meta.users_changed();
                Ok(StatementResult::message(format!("User '{name}' dropped")))
            }
            other => Err(unexpected(&other)),
        }
    }
}
