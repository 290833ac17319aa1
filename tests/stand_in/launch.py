"""``launch``: the WebUI's launcher module, as extensions' ``install.py`` files import it."""

from modules import launch_utils

args = launch_utils.args
python = launch_utils.python
index_url = launch_utils.index_url
run = launch_utils.run
is_installed = launch_utils.is_installed
run_pip = launch_utils.run_pip
run_extension_installer = launch_utils.run_extension_installer
