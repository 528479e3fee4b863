//! The merged view of products and plans every request reads: the config's entries with the
//! stored definitions over them. Immutable; a change builds a new one.

use std::collections::BTreeMap;
use std::sync::Arc;

use tessera_config::{Config, PlanConfig, ProductConfig};

use super::records::{PlanDef, ProductDef};

/// Products and plans in force on this server now.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The configuration it was merged over (defaults, presets; replaced by a reload).
    pub config: Arc<Config>,
    /// Product id → its settings and release channel.
    pub products: BTreeMap<String, ProductConfig>,
    /// Every product with its releases, for the admin API.
    pub product_defs: BTreeMap<String, ProductDef>,
    /// Plan name → its limits.
    pub plans: BTreeMap<String, PlanConfig>,
    /// The product of a license issued without one.
    pub default_product: String,
}

impl Snapshot {
    /// The config's products and plans, then every stored definition over them (a stored
    /// product or plan replaces the config entry of the same name as a whole).
    pub fn merge(config: &Arc<Config>, products: Vec<ProductDef>, plans: Vec<PlanDef>) -> Self {
        let mut product_defs: BTreeMap<String, ProductDef> = config
            .products
            .iter()
            .map(|(id, p)| (id.clone(), ProductDef::from_config(id, p)))
            .collect();
        for p in products {
            product_defs.insert(p.id.clone(), p);
        }
        let mut plan_map = config.plans.clone();
        for p in plans {
            plan_map.insert(p.name.clone(), p.to_config());
        }
        Self {
            config: Arc::clone(config),
            products: product_defs
                .iter()
                .map(|(id, p)| (id.clone(), p.to_config()))
                .collect(),
            product_defs,
            plans: plan_map,
            default_product: config.licenses.default_product.clone(),
        }
    }

    /// The release channel and settings of `product`, else of the default product.
    pub fn product_or_default(&self, product: &str) -> Option<&ProductConfig> {
        self.products
            .get(product)
            .or_else(|| self.products.get(&self.default_product))
    }

    /// Whether licenses may name `plan` (`default` always exists).
    pub fn has_plan(&self, plan: &str) -> bool {
        plan == "default" || self.plans.contains_key(plan)
    }
}
