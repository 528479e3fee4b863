//! The Store port on Redis: every limit-dependent change is one atomic script per license
//! (see `scripts/`); on a single server heartbeats flush into three global sorted sets.

use super::codec::*;
#[allow(clippy::wildcard_imports)]
use super::*;

impl RedisStore {
    async fn load_inner(&self, key: &LicenseKey) -> Result<Option<LicenseSnapshot>, StoreError> {
        let keys = LicenseKeys::of(key);
        let inner = &self.inner;
        let reply = inner
            .query(&inner.on_license(&inner.scripts.load, &keys, &[]))
            .await?;
        let mut parts: Vec<Vec<String>> = decode_value(reply)?;
        if parts.is_empty() {
            return Ok(None);
        }
        if parts.len() != 4 {
            return Err(corrupt("load reply has the wrong shape"));
        }
        let times = pairs_to_map(parts.pop().unwrap_or_default());
        let ses = parts.pop().unwrap_or_default();
        let act = parts.pop().unwrap_or_default();
        let record = record_from_pairs(&parts.pop().unwrap_or_default())?;

        let mut activations = Vec::with_capacity(act.len() / 2);
        for pair in act.chunks_exact(2) {
            let state = times
                .get(&format!("a:{}", pair[0]))
                .ok_or_else(|| corrupt("activation without state"))?;
            activations.push(activation_with_state(&pair[1], state)?);
        }
        activations.sort_by_key(|a| a.id);

        let mut sessions = Vec::with_capacity(ses.len() / 2);
        for pair in ses.chunks_exact(2) {
            let mut session: SessionRecord = from_json(&pair[1])?;
            let stored = times
                .get(&format!("s:{}", pair[0]))
                .ok_or_else(|| corrupt("session without times"))?;
            let (deadline, beat) = parse_session_times(stored)?;
            session.deadline = deadline;
            session.last_heartbeat = beat;
            sessions.push(session);
        }
        sessions.sort_by(|a, b| {
            (a.started_at, a.token_hash.as_bytes()).cmp(&(b.started_at, b.token_hash.as_bytes()))
        });
        Ok(Some(LicenseSnapshot {
            record,
            activations,
            sessions,
        }))
    }

    async fn create_inner(&self, mut record: LicenseRecord) -> Result<LicenseRecord, StoreError> {
        let inner = &self.inner;
        let keys = LicenseKeys::of(&record.key);
        let mut incr = redis::cmd("INCR");
        incr.arg(keys::LICENSE_ID);
        record.id = decode_value(inner.query(&incr).await?)?;
        let fields = record_fields(&record)?;
        let mut list = redis::cmd("ZADD");
        list.arg(keys::LICENSES).arg(0).arg(record.key.as_str());
        let mut by_id = redis::cmd("HSET");
        by_id
            .arg(keys::LICENSE_IDS)
            .arg(record.id)
            .arg(record.key.as_str());
        let reply = inner
            .around(
                &[list, by_id],
                &inner.on_license(&inner.scripts.create_license, &keys, &fields),
                &[],
            )
            .await?;
        let (status, _) = reply_parts(reply)?;
        match status.as_str() {
            "done" => Ok(record),
            "exists" => Err(StoreError::AlreadyExists),
            other => Err(unexpected(other)),
        }
    }

    async fn apply_inner(&self, op: StoreOp) -> Result<StoreOutcome, StoreError> {
        let inner = &self.inner;
        let scripts = &inner.scripts;
        let key = op.key().clone();
        let keys = LicenseKeys::of(&key);
        match op {
            StoreOp::Activate {
                activation,
                max_devices,
                max_activations,
                ..
            } => {
                let mut incr = redis::cmd("INCR");
                incr.arg(keys::ACTIVATION_ID);
                let id: u64 = decode_value(inner.query(&incr).await?)?;
                let stored = Activation {
                    id,
                    hardware_hash: activation.hardware_hash,
                    machine_name: activation.machine_name,
                    app_version: activation.app_version,
                    fingerprint: activation.fingerprint.map(Box::new),
                    activated_at: activation.at,
                    last_heartbeat: activation.at,
                    is_active: true,
                };
                let args = [
                    stored.hardware_hash.clone(),
                    to_json(&stored)?,
                    max_devices.to_string(),
                    max_activations.to_string(),
                    t(activation.at),
                ];
                let reply = inner
                    .query(&inner.on_license(&scripts.activate, &keys, &args))
                    .await?;
                let (status, mut rest) = reply_parts(reply)?;
                match status.as_str() {
                    "new" => Ok(StoreOutcome::Activated {
                        activation: stored,
                        existing: false,
                    }),
                    "existing" if rest.len() == 2 => {
                        let state: String = decode_value(rest.remove(1))?;
                        let json: String = decode_value(rest.remove(0))?;
                        Ok(StoreOutcome::Activated {
                            activation: activation_with_state(&json, &state)?,
                            existing: true,
                        })
                    }
                    "limit" if rest.len() == 1 => {
                        Ok(StoreOutcome::LimitReached(limit_kind(&decode_value::<
                            String,
                        >(
                            rest.remove(0)
                        )?)?))
                    }
                    "not_found" => Err(StoreError::LicenseNotFound),
                    other => Err(unexpected(other)),
                }
            }
            StoreOp::Deactivate {
                hardware_hash, at, ..
            } => {
                let args = [hardware_hash, t(at)];
                let reply = inner
                    .query(&inner.on_license(&scripts.deactivate, &keys, &args))
                    .await?;
                self.finish_ending(&key, reply)
            }
            StoreOp::StartSession {
                session,
                max_sessions,
                end,
                at,
                ..
            } => {
                let tok = session.token_hash;
                let mut args = vec![
                    tok.to_hex(),
                    to_json(&session)?,
                    session_times(session.deadline, session.last_heartbeat),
                    max_sessions.to_string(),
                    t(at),
                ];
                for (t_end, reason) in &end {
                    args.push(t_end.to_hex());
                    args.push(reason.as_str().to_owned());
                }
                let index = keys::token_index(&tok);
                let reply = if inner.cluster() {
                    // The indexes first: an acknowledged session is always findable.
                    let mut set = redis::cmd("SET");
                    set.arg(&index).arg(key.as_str());
                    let member = keys::deadline_member(&key, &tok);
                    let pre = [set, zadd(keys::DEADLINES, session.deadline, &member)];
                    let script = on_license(&scripts.start_session, &keys, &args, false);
                    inner.around(&pre, &script, &[]).await?
                } else {
                    // One script writes the session and its index entries together.
                    let mut all: Vec<&str> = keys.all().to_vec();
                    all.extend(keys::HEARTBEAT_SETS);
                    all.push(&index);
                    inner
                        .query(&evalsha(&scripts.start_session, &all, &args))
                        .await?
                };
                // On a cluster a refused start leaves index entries to remove.
                let written_before = |tok| if inner.cluster() { vec![tok] } else { vec![] };
                let (status, rest) = reply_parts(reply)?;
                match status.as_str() {
                    "done" => {
                        inner.forget_sessions(&key, tokens_of(rest)?);
                        Ok(StoreOutcome::Done)
                    }
                    "limit" => {
                        inner.forget_sessions(&key, written_before(tok));
                        Ok(StoreOutcome::LimitReached(LimitKind::Sessions))
                    }
                    "not_found" => {
                        inner.forget_sessions(&key, written_before(tok));
                        Err(StoreError::LicenseNotFound)
                    }
                    other => Err(unexpected(other)),
                }
            }
            StoreOp::EndSessions {
                ends,
                at,
                confirm_deadline,
                ..
            } => {
                let mut args = vec![t(at), if confirm_deadline { "1" } else { "0" }.to_owned()];
                let mut listed = Vec::with_capacity(ends.len());
                for (tok, reason) in &ends {
                    args.push(tok.to_hex());
                    args.push(reason.as_str().to_owned());
                    listed.push(*tok);
                }
                // Without confirmation every listed session that exists ends: its index
                // entries can go in the same round trip.
                let post = if confirm_deadline {
                    Vec::new()
                } else {
                    forget_commands(&key, &listed)
                };
                let reply = inner
                    .around(
                        &[],
                        &inner.on_license(&scripts.end_sessions, &keys, &args),
                        &post,
                    )
                    .await?;
                let (status, mut rest) = reply_parts(reply)?;
                match status.as_str() {
                    "done" if rest.len() == 2 => {
                        let alive: Vec<String> = decode_value(rest.remove(1))?;
                        let ended = tokens_of(decode_value(rest.remove(0))?)?;
                        let mut still_alive = Vec::with_capacity(alive.len() / 2);
                        for pair in alive.chunks_exact(2) {
                            let deadline = keys::parse_t(&pair[1])
                                .ok_or_else(|| corrupt("malformed deadline"))?;
                            still_alive.push((token(&pair[0])?, deadline));
                        }
                        if confirm_deadline {
                            inner.forget_sessions(&key, ended.clone());
                        }
                        Ok(StoreOutcome::Ended { ended, still_alive })
                    }
                    "not_found" => Err(StoreError::LicenseNotFound),
                    other => Err(unexpected(other)),
                }
            }
            StoreOp::SetStatus {
                status, reason, at, ..
            } => {
                let args = [
                    to_json(&status)?,
                    to_json(&reason)?,
                    status
                        .end_reason()
                        .map(EndReason::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    t(at),
                ];
                let reply = inner
                    .query(&inner.on_license(&scripts.set_status, &keys, &args))
                    .await?;
                self.finish_ending(&key, reply)
            }
            StoreOp::UpdateLicense { record } => {
                let mut args = vec![to_json(&record.id)?, to_json(&record.key)?];
                args.extend(record_fields(&record)?);
                let reply = inner
                    .query(&inner.on_license(&scripts.update_license, &keys, &args))
                    .await?;
                let (status, _) = reply_parts(reply)?;
                match status.as_str() {
                    "done" => Ok(StoreOutcome::Done),
                    "mismatch" => Err(StoreError::Corrupt("license id mismatch".into())),
                    "not_found" => Err(StoreError::LicenseNotFound),
                    other => Err(unexpected(other)),
                }
            }
            StoreOp::DeleteLicense { .. } => {
                let reply = inner
                    .query(&inner.on_license(&scripts.delete_license, &keys, &[]))
                    .await?;
                let (status, mut rest) = reply_parts(reply)?;
                match status.as_str() {
                    "done" if rest.len() == 3 => {
                        let hws: Vec<String> = decode_value(rest.remove(2))?;
                        let tokens = tokens_of(decode_value(rest.remove(1))?)?;
                        let id: String = decode_value(rest.remove(0))?;
                        // The global entries that name the license go after its keys: a
                        // crash in between leaves entries every reader already ignores
                        // (the list and id index are confirmed against the record).
                        let mut cleanup = if tokens.is_empty() {
                            Vec::new()
                        } else {
                            forget_commands(&key, &tokens)
                        };
                        let mut list = redis::cmd("ZREM");
                        list.arg(keys::LICENSES).arg(key.as_str());
                        cleanup.push(list);
                        let mut by_id = redis::cmd("HDEL");
                        by_id.arg(keys::LICENSE_IDS).arg(id.trim_matches('"'));
                        cleanup.push(by_id);
                        if !inner.cluster() && !hws.is_empty() {
                            let mut devices = redis::cmd("ZREM");
                            devices.arg(keys::DEVICE_BEATS);
                            for hw in &hws {
                                devices.arg(keys::device_member(&key, hw));
                            }
                            cleanup.push(devices);
                        }
                        inner.spread(&cleanup).await?;
                        Ok(StoreOutcome::Done)
                    }
                    "not_found" => Err(StoreError::LicenseNotFound),
                    other => Err(unexpected(other)),
                }
            }
        }
    }

    async fn records_inner(
        &self,
        after: Option<&LicenseKey>,
        limit: usize,
    ) -> Result<Vec<LicenseRecord>, StoreError> {
        let names = self.list_inner(after, limit).await?;
        let reads: Vec<Cmd> = names
            .iter()
            .map(|k| {
                let mut c = redis::cmd("HGETALL");
                c.arg(LicenseKeys::of(k).rec);
                c
            })
            .collect();
        let replies = self.inner.spread(&reads).await?;
        let mut out = Vec::with_capacity(replies.len());
        for reply in replies {
            let pairs: Vec<String> = decode_value(reply)?;
            // Deleted between the two reads: not listed.
            if !pairs.is_empty() {
                out.push(record_from_pairs(&pairs)?);
            }
        }
        Ok(out)
    }

    async fn key_for_id_inner(&self, id: u64) -> Result<Option<LicenseKey>, StoreError> {
        let mut get = redis::cmd("HGET");
        get.arg(keys::LICENSE_IDS).arg(id);
        let Some(raw) = decode_value::<Option<String>>(self.inner.query(&get).await?)? else {
            return Ok(None);
        };
        let key = LicenseKey::parse(&raw).map_err(corrupt)?;
        // Confirm against the record: an entry can outlive a crash during a delete.
        let mut stored = redis::cmd("HGET");
        stored.arg(LicenseKeys::of(&key).rec).arg("id");
        let stored: Option<String> = decode_value(self.inner.query(&stored).await?)?;
        Ok((stored.as_deref() == Some(id.to_string().as_str())).then_some(key))
    }

    /// Fills the id index from the license records when it is empty (data written before the
    /// index existed). Runs once at connect.
    pub(super) async fn backfill_license_ids(&self) -> Result<(), StoreError> {
        let mut len = redis::cmd("HLEN");
        len.arg(keys::LICENSE_IDS);
        if decode_value::<u64>(self.inner.query(&len).await?)? > 0 {
            return Ok(());
        }
        let mut after: Option<LicenseKey> = None;
        loop {
            let page = self.records_inner(after.as_ref(), 500).await?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = Some(last.key.clone());
            let mut hset = redis::cmd("HSET");
            hset.arg(keys::LICENSE_IDS);
            for r in &page {
                hset.arg(r.id).arg(r.key.as_str());
            }
            self.inner.query(&hset).await?;
        }
    }

    /// Handles the `{'done', ended token...}` reply of deactivate and set_status.
    fn finish_ending(&self, key: &LicenseKey, reply: Value) -> Result<StoreOutcome, StoreError> {
        let (status, rest) = reply_parts(reply)?;
        match status.as_str() {
            "done" => {
                self.inner.forget_sessions(key, tokens_of(rest)?);
                Ok(StoreOutcome::Done)
            }
            "not_found" => Err(StoreError::LicenseNotFound),
            other => Err(unexpected(other)),
        }
    }

    async fn flush_inner(&self, batch: &[HeartbeatWrite]) -> Result<(), StoreError> {
        let inner = &self.inner;
        let sessions: Vec<String> = batch
            .iter()
            .map(|hb| keys::deadline_member(&hb.key, &hb.token_hash))
            .collect();
        let deadlines = heartbeat_zadd(
            keys::DEADLINES,
            batch.iter().map(|hb| hb.deadline).zip(&sessions),
        );
        if !inner.cluster() {
            let beats = heartbeat_zadd(
                keys::BEATS,
                batch.iter().map(|hb| hb.last_heartbeat).zip(&sessions),
            );
            let devices = heartbeat_zadd(
                keys::DEVICE_BEATS,
                batch.iter().map(|hb| {
                    (
                        hb.last_heartbeat,
                        keys::device_member(&hb.key, &hb.hardware_hash),
                    )
                }),
            );
            inner.pipeline(&[deadlines, beats, devices]).await?;
            return Ok(());
        }
        // Writes per license, in batch order (later writes are applied after earlier ones).
        let mut by_license: BTreeMap<&LicenseKey, Vec<&HeartbeatWrite>> = BTreeMap::new();
        for hb in batch {
            by_license.entry(&hb.key).or_default().push(hb);
        }
        // One group per slot (a script may only touch one slot).
        let mut groups: HashMap<Slot, Vec<(&LicenseKey, Vec<&HeartbeatWrite>)>> = HashMap::new();
        for (key, writes) in by_license {
            let slot = Slot::for_key(LicenseKeys::of(key).rec);
            groups.entry(slot).or_default().push((key, writes));
        }
        let per_group: Vec<Vec<Cmd>> = groups
            .into_values()
            .map(|licenses| heartbeat_scripts(&inner.scripts, licenses))
            .collect();
        futures::future::try_join_all(per_group.iter().map(|cmds| inner.pipeline(cmds))).await?;
        inner.query(&deadlines).await?;
        Ok(())
    }

    async fn find_inner(&self, tok: &TokenHash) -> Result<Option<LicenseKey>, StoreError> {
        let inner = &self.inner;
        let mut get = redis::cmd("GET");
        get.arg(keys::token_index(tok));
        let Some(raw) = decode_value::<Option<String>>(inner.query(&get).await?)? else {
            return Ok(None);
        };
        let key = LicenseKey::parse(&raw).map_err(corrupt)?;
        // The index may name a session that was refused or has ended: confirm it.
        let mut exists = redis::cmd("HEXISTS");
        exists
            .arg(LicenseKeys::of(&key).times)
            .arg(keys::session_field(tok));
        let live: bool = decode_value(inner.query(&exists).await?)?;
        Ok(live.then_some(key))
    }

    async fn overdue_inner(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(LicenseKey, TokenHash)>, StoreError> {
        let inner = &self.inner;
        let mut out: Vec<(LicenseKey, TokenHash)> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let max = format!("({}", keys::time_score(before));
        for _ in 0..OVERDUE_ROUNDS {
            if out.len() >= limit {
                break;
            }
            let want = limit - out.len();
            let mut range = redis::cmd("ZRANGEBYSCORE");
            range
                .arg(keys::DEADLINES)
                .arg("-inf")
                .arg(&max)
                .arg("LIMIT")
                .arg(out.len())
                .arg(want);
            let members: Vec<String> = decode_value(inner.query(&range).await?)?;
            let candidates: Vec<(String, LicenseKey, TokenHash)> = members
                .iter()
                .filter(|m| !seen.contains(*m))
                .filter_map(|m| keys::parse_deadline_member(m).map(|(k, tok)| (m.clone(), k, tok)))
                .collect();
            let checks: Vec<Cmd> = candidates
                .iter()
                .map(|(_, k, tok)| {
                    let mut c = redis::cmd("HGET");
                    c.arg(LicenseKeys::of(k).times)
                        .arg(keys::session_field(tok));
                    c
                })
                .collect();
            let times = inner.spread(&checks).await?;
            let mut fixes = Vec::new();
            for ((member, k, tok), stored) in candidates.into_iter().zip(times) {
                seen.insert(member.clone());
                match decode_value::<Option<String>>(stored)? {
                    None => fixes.extend(zrem_sessions(std::slice::from_ref(&member))),
                    Some(times) => {
                        let (deadline, _) = parse_session_times(&times)?;
                        if deadline < before {
                            out.push((k, tok));
                        } else {
                            // Only raised: on a single Redis the set, not the hash,
                            // holds the latest deadline.
                            let mut zadd = redis::cmd("ZADD");
                            zadd.arg(keys::DEADLINES)
                                .arg("XX")
                                .arg("GT")
                                .arg(keys::time_score(deadline))
                                .arg(&member);
                            fixes.push(zadd);
                        }
                    }
                }
            }
            // Malformed members are dropped from the index too.
            for m in members
                .iter()
                .filter(|m| keys::parse_deadline_member(m).is_none())
            {
                let mut zrem = redis::cmd("ZREM");
                zrem.arg(keys::DEADLINES).arg(m);
                fixes.push(zrem);
            }
            let exhausted = members.len() < want;
            if fixes.is_empty() || exhausted {
                inner.repair_index(&fixes).await;
                break;
            }
            inner.repair_index(&fixes).await;
        }
        out.truncate(limit);
        Ok(out)
    }

    async fn list_inner(
        &self,
        after: Option<&LicenseKey>,
        limit: usize,
    ) -> Result<Vec<LicenseKey>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut range = redis::cmd("ZRANGEBYLEX");
        range
            .arg(keys::LICENSES)
            .arg(after.map_or_else(|| "-".to_owned(), |a| format!("({}", a.as_str())))
            .arg("+")
            .arg("LIMIT")
            .arg(0)
            .arg(limit);
        let names: Vec<String> = decode_value(self.inner.query(&range).await?)?;
        names
            .iter()
            .map(|n| LicenseKey::parse(n).map_err(corrupt))
            .collect()
    }
}

impl Inner {
    /// Index repairs: failures only delay them to the next sweep.
    async fn repair_index(&self, cmds: &[Cmd]) {
        if cmds.is_empty() {
            return;
        }
        if let Err(e) = self.spread(cmds).await {
            tracing::warn!(error = %e, "could not repair the session deadline index");
        }
    }
}

/// `ZADD key` of one member at `at`.
fn zadd(key: &str, at: DateTime<Utc>, member: &str) -> Cmd {
    let mut cmd = redis::cmd("ZADD");
    cmd.arg(key).arg(keys::time_score(at)).arg(member);
    cmd
}

/// `ZADD key GT` of one (time, member) per entry, one entry per heartbeat write: times only move forward. Not
/// `XX`: a member an index repair removed while its session lives comes back. A session
/// entry an ended session revives is removed by the next [`Store::overdue_sessions`] that
/// reaches it; a device entry revived after its deactivation is never read (only active
/// devices read the set) and is removed when the device is activated again.
fn heartbeat_zadd<M: redis::ToRedisArgs>(
    key: &str,
    entries: impl Iterator<Item = (DateTime<Utc>, M)>,
) -> Cmd {
    let mut zadd = redis::cmd("ZADD");
    zadd.arg(key).arg("GT");
    for (at, member) in entries {
        zadd.arg(keys::time_score(at)).arg(member);
    }
    zadd
}

/// `heartbeats.lua` calls for the licenses of one group, each covering at most
/// [`HEARTBEATS_PER_SCRIPT`] writes (a license with more is split across calls, which is
/// equivalent because every write only moves times forward).
fn heartbeat_scripts(
    scripts: &Scripts,
    licenses: Vec<(&LicenseKey, Vec<&HeartbeatWrite>)>,
) -> Vec<Cmd> {
    let mut cmds = Vec::new();
    let mut keys_acc: Vec<String> = Vec::new();
    let mut args_acc: Vec<String> = Vec::new();
    let mut count = 0;
    for (key, writes) in licenses {
        let lk = LicenseKeys::of(key);
        for chunk in writes.chunks(HEARTBEATS_PER_SCRIPT) {
            if count + chunk.len() > HEARTBEATS_PER_SCRIPT && count > 0 {
                cmds.push(evalsha(&scripts.heartbeats, &keys_acc, &args_acc));
                keys_acc.clear();
                args_acc.clear();
                count = 0;
            }
            keys_acc.push(lk.times.clone());
            args_acc.push(chunk.len().to_string());
            for hb in chunk {
                let (last_heartbeat, deadline) = hb.kept_times();
                args_acc.push(hb.token_hash.to_hex());
                args_acc.push(t(deadline));
                args_acc.push(t(last_heartbeat));
                args_acc.push(hb.hardware_hash.clone());
            }
            count += chunk.len();
        }
    }
    if count > 0 {
        cmds.push(evalsha(&scripts.heartbeats, &keys_acc, &args_acc));
    }
    cmds
}

#[async_trait]
impl Store for RedisStore {
    async fn load(&self, key: &LicenseKey) -> Result<Option<LicenseSnapshot>, StoreError> {
        self.guarded(self.load_inner(key)).await
    }

    async fn create_license(&self, record: LicenseRecord) -> Result<LicenseRecord, StoreError> {
        self.guarded(self.create_inner(record)).await
    }

    async fn apply(&self, op: StoreOp) -> Result<StoreOutcome, StoreError> {
        self.guarded(self.apply_inner(op)).await
    }

    async fn flush_heartbeats(&self, batch: &[HeartbeatWrite]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.guarded(self.flush_inner(batch)).await
    }

    async fn find_session(&self, token: &TokenHash) -> Result<Option<LicenseKey>, StoreError> {
        self.guarded(self.find_inner(token)).await
    }

    async fn overdue_sessions(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(LicenseKey, TokenHash)>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.guarded(self.overdue_inner(before, limit)).await
    }

    async fn list_licenses(
        &self,
        after: Option<&LicenseKey>,
        limit: usize,
    ) -> Result<Vec<LicenseKey>, StoreError> {
        self.guarded(self.list_inner(after, limit)).await
    }

    async fn list_records(
        &self,
        after: Option<&LicenseKey>,
        limit: usize,
    ) -> Result<Vec<LicenseRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.guarded(self.records_inner(after, limit)).await
    }

    async fn key_for_id(&self, id: u64) -> Result<Option<LicenseKey>, StoreError> {
        self.guarded(self.key_for_id_inner(id)).await
    }

    fn health(&self) -> StoreHealth {
        if self.inner.healthy.load(Ordering::Relaxed) {
            StoreHealth::Ok
        } else {
            StoreHealth::Degraded
        }
    }
}
