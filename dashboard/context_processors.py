from dashboard import roles


def user_roles(request) -> dict:
    user = request.user
    return {
        "user_is_ops": roles.is_ops(user),
        "user_role": roles.role_label(user) if user.is_authenticated else "",
    }
