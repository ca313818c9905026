//! `[site] director`, `directors_key` and `[[director]]`: this site's other directors
//! (decision 0015). They exchange load reports with this one under the site's name,
//! signed with the key the site's directors share.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use toml::Spanned;

use super::Validator;
use crate::config::raw::*;
use crate::config::*;

impl Validator<'_> {
    pub(super) fn directors(&mut self, raw: &RawConfig, site: &Site, port: u16) -> Directors {
        let s = raw.site.get_ref();
        let Some(first) = raw.directors.first() else {
            if let Some(k) = s.directors_key.as_ref().or(s.directors_key_file.as_ref()) {
                self.problem(
                    k.span(),
                    "directors_key without [[director]] sections: list the site's other directors or remove the key",
                );
            }
            return Directors::default();
        };
        if s.director.is_none() {
            self.problem(
                first.span(),
                "[[director]] needs site.director: this director's own name among the site's directors",
            );
        }
        let key = self
            .key(
                "this site's directors",
                "directors_key",
                &s.directors_key,
                &s.directors_key_file,
            )
            .unwrap_or_else(|| {
                if s.directors_key.is_none() && s.directors_key_file.is_none() {
                    self.problem(first.span(), "[[director]] needs site.directors_key or site.directors_key_file: the directors' reports to each other must be authenticated");
                }
                Vec::new()
            });
        let mut names = HashSet::from([site.director.clone()]);
        let mut others = Vec::new();
        for d in &raw.directors {
            let r = d.get_ref();
            let name = self.name(&r.name, "director name");
            if !names.insert(name.clone()) {
                let why = if name == site.director {
                    "is this director's own name (site.director)"
                } else {
                    "is listed twice"
                };
                self.problem(r.name.span(), format!("director `{name}` {why}"));
            }
            let address = self.ipv4(&r.address, "director address");
            if address == Some(site.address) {
                self.problem(
                    r.address.span(),
                    "director address is this director's own address",
                );
            }
            let address = address.unwrap_or(Ipv4Addr::UNSPECIFIED);
            others.push(Director {
                name,
                address,
                url: self.director_url(r.url.as_ref(), address, port),
            });
        }
        Directors { key, others }
    }

    fn director_url(
        &mut self,
        url: Option<&Spanned<String>>,
        address: Ipv4Addr,
        port: u16,
    ) -> String {
        let Some(u) = url else {
            return format!(
                "http://{address}:{port}{}",
                geo_balancer::exchange::REPORT_PATH
            );
        };
        let text = u.get_ref();
        if !(text.starts_with("http://") || text.starts_with("https://")) {
            self.problem(
                u.span(),
                format!("url `{text}` must start with http:// or https://"),
            );
        }
        text.clone()
    }
}
