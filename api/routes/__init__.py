"""One APIRouter per resource; `api.main` joins them."""
