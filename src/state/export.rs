//! What `quorate state export` reads that the [`Store`](crate::reconcile::store::Store)
//! trait does not give: the nodes the database holds records of.

use super::{StateError, StateStore};

impl StateStore {
    /// Every node the database has contents, a last-seen time, fail counts or fence
    /// records of, sorted.
    pub(crate) async fn node_names(&self) -> Result<Vec<String>, StateError> {
        self.blocking(|conn| {
            let mut stmt = conn.prepare(
                "SELECT node FROM node_contents UNION SELECT node FROM node_seen
                 UNION SELECT node FROM failures UNION SELECT node FROM fence_attempts
                 UNION SELECT node FROM fence_outcomes
                 UNION SELECT node FROM manual_confirmations ORDER BY 1",
            )?;
            let names = stmt
                .query_map([], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(names)
        })
        .await
    }
}
