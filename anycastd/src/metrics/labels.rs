//! The label sets of the exposition: one type per shape, fields in label order.

use prometheus_client::encoding::EncodeLabelSet;

macro_rules! label_set {
    ($($name:ident { $($field:ident),+ })*) => {$(
        #[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
        pub struct $name { $(pub $field: String),+ }
    )*};
}

label_set! {
    SiteL { site }
    VipPrefix { vip, prefix }
    VipStateL { vip, state }
    NeighborStateL { neighbor, state }
    NeighborL { neighbor }
    ReasonL { reason }
    ServerL { vip, service, server }
    TransitionL { server, to }
    PeerL { peer }
    PeerReasonL { peer, reason }
    VipKindL { vip, kind }
    VipL { vip }
    KindL { kind }
    SinkL { sink }
    RoleL { role }
    OriginL { origin }
    DirectorL { director }
}
