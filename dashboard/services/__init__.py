"""The domain: presets, downloads, models, workflows, system. No aiohttp.web here."""
