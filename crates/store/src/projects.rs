use redb::{ReadableDatabase, ReadableTable};

use super::{ProjectRec, ScriptStore, StoreError};
use vwed_base::clock::local_now;
use vwed_base::paths::check_project_name;
use vwed_db::{self as db, PROJECTS};

impl ScriptStore {
    pub fn create_project(
        &self,
        name: &str,
        description: &str,
        created_by: &str,
    ) -> Result<ProjectRec, StoreError> {
        check_project_name(name)?;
        if created_by.chars().count() > 100 {
            return Err(StoreError::Invalid(
                "created_by 过长 (最多 100 个字符)".into(),
            ));
        }
        let tx = self.db.begin_write()?;
        let rec = {
            let mut t = tx.open_table(PROJECTS)?;
            for row in t.iter()? {
                let (_, v) = row?;
                let p: ProjectRec = db::decode(v.value())?;
                if p.project_name == name {
                    return Err(StoreError::ProjectExists(name.to_string()));
                }
            }
            let now = local_now();
            let rec = ProjectRec {
                id: db::next_id(&tx, "project_id")?,
                project_name: name.to_string(),
                description: description.to_string(),
                status: "active".into(),
                created_by: created_by.to_string(),
                created_at: now.clone(),
                updated_at: now,
            };
            t.insert(rec.id, db::encode(&rec)?.as_slice())?;
            rec
        };
        // The folder exists before the record commits: a record never names a
        // folder that is missing.
        self.folder(name, [], true)?;
        tx.commit()?;
        Ok(rec)
    }

    pub fn list_projects(&self, status: Option<&str>) -> Result<Vec<ProjectRec>, StoreError> {
        let rx = self.db.begin_read()?;
        let t = rx.open_table(PROJECTS)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (_, v) = row?;
            let p: ProjectRec = db::decode(v.value())?;
            if status.is_none_or(|s| s == "all" || p.status == s) {
                out.push(p);
            }
        }
        Ok(out)
    }

    pub fn get_project(&self, id: u64) -> Result<ProjectRec, StoreError> {
        let rx = self.db.begin_read()?;
        let t = rx.open_table(PROJECTS)?;
        let v = t
            .get(id)?
            .ok_or_else(|| StoreError::ProjectNotFound(id.to_string()))?;
        Ok(db::decode(v.value())?)
    }

    pub fn project_by_name(&self, name: &str) -> Result<ProjectRec, StoreError> {
        self.list_projects(Some("all"))?
            .into_iter()
            .find(|p| p.project_name == name)
            .ok_or_else(|| StoreError::ProjectNotFound(name.to_string()))
    }
}
