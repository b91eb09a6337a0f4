// SPDX-License-Identifier: Apache-2.0
// FieldPath: where an invalid input is, kept structured and rendered once in a face's spelling.

//! Field paths.
//!
//! An [`Error`](crate::Error) of [`ErrorCode::InvalidInput`](crate::ErrorCode::InvalidInput)
//! names the offending field with a [`FieldPath`]: the segments the validator walked, not a
//! string a face would have to parse back. A path may start with an **argument** of a call the
//! core offers (the meter's `record(customer_identifier, dimension, quantity, timestamp,
//! allocations)`, a setting): the face asks for it in its own spelling with a [`FieldStyle`].
//! The **members** after it are the service model's (`UsageRecords[3].Quantity`,
//! `allocations[0].Tags[1].Key`) and keep the model's spelling in every style, because every
//! face's input structures (boto3's dicts, AWS SDK v3's shapes, the C setters, the Kotlin
//! request classes) use the model's member names for them.

use std::borrow::Cow;
use std::fmt;

/// One step of a [`FieldPath`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    /// An argument of a core call, in the core's (snake_case) spelling: `customer_identifier`.
    /// Rendered in the [`FieldStyle`] a face asks for.
    Argument(&'static str),
    /// A member of the service model (`UsageRecords`, `Dimension`), or a name a face gave
    /// verbatim: rendered as it is.
    Member(Cow<'static, str>),
    /// A list index.
    Index(usize),
}

/// How a face spells the arguments in a [`FieldPath`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FieldStyle {
    /// The model's spelling, PascalCase (`CustomerIdentifier`).
    Model,
    /// snake_case, as Rust, Python and C name arguments (`customer_identifier`): the style of
    /// [`Error::message`](crate::Error::message) and [`Error::field`](crate::Error::field).
    #[default]
    Snake,
    /// camelCase, as JavaScript and Kotlin name arguments (`customerIdentifier`).
    Camel,
}

/// Where an invalid input is: `UsageRecords[0].Dimension`, or `dimension` for the meter's
/// argument of that name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(Vec<Segment>);

impl FieldPath {
    /// A path that starts at an argument of a core call (`FieldPath::argument("dimension")`).
    pub fn argument(name: &'static str) -> FieldPath {
        FieldPath(vec![Segment::Argument(name)])
    }

    /// A path that starts at a model member, or at a name given verbatim.
    pub fn member(name: impl Into<Cow<'static, str>>) -> FieldPath {
        FieldPath(vec![Segment::Member(name.into())])
    }

    /// This path followed by a member.
    pub fn then(mut self, name: impl Into<Cow<'static, str>>) -> FieldPath {
        self.0.push(Segment::Member(name.into()));
        self
    }

    /// This path followed by a list index.
    pub fn at(mut self, i: usize) -> FieldPath {
        self.0.push(Segment::Index(i));
        self
    }

    /// The segments, outermost first.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    pub(crate) fn from_segments(segments: Vec<Segment>) -> FieldPath {
        FieldPath(segments)
    }

    /// The path in a face's spelling: `allocations[0].Tags[1].Key` (snake),
    /// `customerAwsAccountId` (camel).
    pub fn render(&self, style: FieldStyle) -> String {
        let mut out = String::new();
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Segment::Index(n) => {
                    out.push('[');
                    out.push_str(&n.to_string());
                    out.push(']');
                }
                Segment::Argument(a) => {
                    if i > 0 {
                        out.push('.');
                    }
                    spell(&mut out, a, style);
                }
                Segment::Member(m) => {
                    if i > 0 {
                        out.push('.');
                    }
                    out.push_str(m);
                }
            }
        }
        out
    }
}

/// Writes the snake_case `name` in `style`.
fn spell(out: &mut String, name: &str, style: FieldStyle) {
    match style {
        FieldStyle::Snake => out.push_str(name),
        FieldStyle::Model | FieldStyle::Camel => {
            for (i, word) in name.split('_').enumerate() {
                let mut c = word.chars();
                if let Some(first) = c.next() {
                    if i == 0 && style == FieldStyle::Camel {
                        out.push(first);
                    } else {
                        out.extend(first.to_uppercase());
                    }
                    out.push_str(c.as_str());
                }
            }
        }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(FieldStyle::default()))
    }
}

/// A name given verbatim (a face's own path text, a setting's name).
impl From<&str> for FieldPath {
    fn from(s: &str) -> FieldPath {
        FieldPath::member(s.to_owned())
    }
}

/// A name given verbatim (a face's own path text, a setting's name).
impl From<String> for FieldPath {
    fn from(s: String) -> FieldPath {
        FieldPath::member(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_follow_the_style_and_members_keep_the_models_spelling() {
        let p = FieldPath::argument("allocations")
            .at(0)
            .then("Tags")
            .at(1)
            .then("Key");
        assert_eq!(p.render(FieldStyle::Snake), "allocations[0].Tags[1].Key");
        assert_eq!(p.render(FieldStyle::Camel), "allocations[0].Tags[1].Key");
        assert_eq!(p.render(FieldStyle::Model), "Allocations[0].Tags[1].Key");
        let a = FieldPath::argument("customer_aws_account_id");
        assert_eq!(a.render(FieldStyle::Snake), "customer_aws_account_id");
        assert_eq!(a.render(FieldStyle::Camel), "customerAwsAccountId");
        assert_eq!(a.render(FieldStyle::Model), "CustomerAwsAccountId");
        let m = FieldPath::member("UsageRecords").at(3).then("Quantity");
        for s in [FieldStyle::Model, FieldStyle::Snake, FieldStyle::Camel] {
            assert_eq!(m.render(s), "UsageRecords[3].Quantity");
        }
    }
}
