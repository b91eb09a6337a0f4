// SPDX-License-Identifier: Apache-2.0
// The fleet store in a build without the `fleet` feature: it cannot be opened.

//! Stands in for `fleet.rs` when the crate is built without the `fleet` feature, so the
//! meter compiles unchanged; a `Store::postgres` meter fails at `UsageMeter::new`.

use super::shared::InFlight;
use super::store::{Outcome, Prepared, Scope, SendItem};
use super::{Buffer, FleetSettings, Written};
use crate::Error;

pub(crate) enum Fleet {}

pub(crate) struct Sender;

impl Fleet {
    pub(crate) async fn open(settings: FleetSettings) -> Result<Fleet, Error> {
        let _ = settings; // every field is read by the real store
        Err(Error::invalid_config(
            "this build of marketplace-metering has no fleet store (PostgreSQL): build it with \
             the `fleet` feature",
        ))
    }
    pub(crate) fn replica(&self) -> &str {
        match *self {}
    }
    pub(crate) fn retire_idle(&self) {}

    pub(crate) fn start_hour(&self) -> Option<i64> {
        match *self {}
    }
    pub(crate) fn narrow_encoding(&self) -> Option<&str> {
        match *self {}
    }
    pub(crate) fn holds(&self, _: &str) -> bool {
        match *self {}
    }
    pub(crate) async fn write_keyed(
        &self,
        _: &str,
        _: &Buffer,
        _: i64,
        _: Option<i64>,
        _: &InFlight,
    ) -> Result<Written, Error> {
        match *self {}
    }
    pub(crate) async fn seal(&self, _: &Scope, _: i64) -> Result<Prepared, Error> {
        match *self {}
    }
    pub(crate) async fn sender(&self, _: &str) -> Result<Option<Sender>, Error> {
        match *self {}
    }
    pub(crate) async fn keep_sender(&self, _: &Sender) -> bool {
        match *self {}
    }
    pub(crate) async fn prune_closed(&self, _: &str, _: i64) {
        match *self {}
    }
    pub(crate) async fn release_sender(&self, _: Sender) {
        match *self {}
    }
    pub(crate) fn closed_hint(&self) -> Option<i64> {
        match *self {}
    }
    pub(crate) fn in_callback(&self, _: bool) {
        match *self {}
    }
    pub(crate) async fn claim(
        &self,
        _: &str,
        _: i64,
        _: &[i64],
        _: &[String],
        _: i64,
    ) -> Result<Vec<SendItem>, Error> {
        match *self {}
    }
    pub(crate) async fn count_sendable(
        &self,
        _: &str,
        _: &[i64],
        _: &[String],
    ) -> Result<usize, Error> {
        match *self {}
    }
    pub(crate) async fn record_outcomes(
        &self,
        _: &[Outcome],
        _: i64,
    ) -> Result<std::collections::HashSet<i64>, Error> {
        match *self {}
    }
    pub(crate) async fn status(&self, _: &str) -> Result<super::MeterStatus, Error> {
        match *self {}
    }
    pub(crate) async fn store_id(&self) -> Result<String, Error> {
        match *self {}
    }
    pub(crate) async fn register(
        &self,
        _: &str,
        _: Option<&super::Customer>,
        _: &[String],
        _: i64,
    ) -> Result<(), Error> {
        match *self {}
    }
    pub(crate) async fn unregister(
        &self,
        _: &str,
        _: Option<&super::Customer>,
        _: Option<&[String]>,
    ) -> Result<usize, Error> {
        match *self {}
    }
    pub(crate) async fn dead_letters(&self, _: &str) -> Result<Vec<super::DeadLetter>, Error> {
        match *self {}
    }
    pub(crate) async fn requeue(
        &self,
        _: &str,
        _: &super::RequeueFilter,
        _: i64,
    ) -> Result<usize, Error> {
        match *self {}
    }
}
