//! Enums shown to people and programs by a fixed name (`"lan"`, `"blob"`):
//! one macro gives each its `as_str`, `Display` and comparisons with strings,
//! so code and tests that compare a field with its name keep reading
//! `kind == "blob"`. The serde spelling is set on the enum itself (its
//! `rename_all`); a test beside each enum checks both agree.

/// Implements `as_str`, `Display`, `PartialEq<str>` and `PartialEq<&str>` for
/// a fieldless enum, given each variant's name:
///
/// ```
/// #[derive(Clone, Copy)]
/// enum Mode { Server, Client }
/// ferry_core::named_enum!(Mode { Server => "server", Client => "client" });
/// assert_eq!(Mode::Server.to_string(), "server");
/// assert!(Mode::Client == "client");
/// ```
#[macro_export]
macro_rules! named_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            /// The name shown to people and scripts (the JSON spelling).
            pub fn as_str(&self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::cmp::PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl ::std::cmp::PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}
