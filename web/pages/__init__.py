"""One module per page group; each has an APIRouter using `web.route.PageRoute`."""
