"""Hydra SearchPathPlugin that makes ``+plugin=falcon_h1r`` a real config group.

Hydra imports every sub-package of the ``hydra_plugins`` namespace package and
instantiates the ``SearchPathPlugin`` subclasses it finds. Without this plugin,
``+plugin=falcon_h1r`` does not select ``plugin/falcon_h1r.yaml``: Hydra fails
with "Could not find 'plugin/falcon_h1r'" (and ``+plugin.x=...`` would silently
add a useless key).
"""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

CONFIG_PACKAGE = "pkg://verl_falcon_plugin.hydra_conf"


class FalconH1RSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="verl-falcon-plugin", path=CONFIG_PACKAGE)
