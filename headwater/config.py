"""The config file's model and loader, as users import them: ``from headwater import
load_config``. The sections live with the parts that read them (see each module)."""

from headwater.flows.config import HeadwaterConfig, load_config

__all__ = ["HeadwaterConfig", "load_config"]
