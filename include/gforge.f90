! gforge.f90: the C API of GalacticForge (include/gforge.h) for Fortran 2008, through iso_c_binding.
!
! Every gf_* function of gforge.h, with the same name, arguments and conventions (see the header for what
! each does): handles are type(c_ptr); a call returns its gf_status as integer(c_int) (GF_OK = 0); sizes
! are integer(c_size_t); seeds integer(c_int64_t) (C's uint64_t, same bits); arrays are the caller's, in
! C's row-major order, so a Fortran array stars(D, n) holds star i in column i.
!
! Strings: pass gf_c('text') where the header takes a `const char*`; gf_f(ptr) turns a `const char*` the
! library returns into a Fortran string, and gf_error() is gf_f(gf_last_error()).
!
!   gfortran -c include/gforge.f90                          (gforge.mod, gforge.o)
!   gfortran code.f90 gforge.o -Ltarget/release -lgforge -Wl,-rpath,$PWD/target/release
module gforge
    use, intrinsic :: iso_c_binding
    implicit none

    ! gforge.h's GF_ABI_VERSION (Fortran names ignore case, so that name is the function's).
    integer(c_int), parameter :: GF_ABI = 1
    integer(c_int), parameter :: GF_OK = 0, GF_ERR_USAGE = 1, GF_ERR_SHAPE = 2, GF_ERR_IO = 3, &
        GF_ERR_DATA = 4, GF_ERR_DEVICE = 5, GF_ERR_OOM = 6, GF_ERR_NUMERIC = 7, GF_ERR_INTERNAL = 8

    ! One line of `gforge devices`; its strings belong to the list (read them with gf_f).
    type, bind(c) :: gf_device_info
        type(c_ptr) :: spec, name, backend, kind
        integer(c_int64_t) :: memory
        integer(c_int) :: f16
    end type gf_device_info

    interface
        ! ---- library
        function gf_version() bind(c) result(r)
            import :: c_ptr
            type(c_ptr) :: r
        end function
        function gf_abi_version() bind(c) result(r)
            import :: c_int
            integer(c_int) :: r
        end function
        function gf_status_name(status) bind(c) result(r)
            import :: c_ptr, c_int
            type(c_ptr) :: r
            integer(c_int), value :: status
        end function
        function gf_last_error() bind(c) result(r)
            import :: c_ptr
            type(c_ptr) :: r
        end function

        ! ---- devices
        function gf_list_devices(list) bind(c) result(r)
            import :: c_int, c_ptr
            integer(c_int) :: r
            type(c_ptr), intent(out) :: list
        end function
        function gf_device_list_len(list, len) bind(c) result(r)
            import :: c_int, c_ptr, c_size_t
            integer(c_int) :: r
            type(c_ptr), value :: list
            integer(c_size_t), intent(out) :: len
        end function
        function gf_device_list_get(list, i, info) bind(c) result(r)
            import :: c_int, c_ptr, c_size_t, gf_device_info
            integer(c_int) :: r
            type(c_ptr), value :: list
            integer(c_size_t), value :: i
            type(gf_device_info), intent(out) :: info
        end function
        function gf_device_list_notes(list, notes) bind(c) result(r)
            import :: c_int, c_ptr
            integer(c_int) :: r
            type(c_ptr), value :: list
            type(c_ptr), intent(out) :: notes
        end function
        subroutine gf_device_list_free(list) bind(c)
            import :: c_ptr
            type(c_ptr), value :: list
        end subroutine
        function gf_device_open(spec, device) bind(c) result(r)
            import :: c_int, c_ptr, c_char
            integer(c_int) :: r
            character(kind=c_char), intent(in) :: spec(*)
            type(c_ptr), intent(out) :: device
        end function
        function gf_device_name(device, name) bind(c) result(r)
            import :: c_int, c_ptr
            integer(c_int) :: r
            type(c_ptr), value :: device
            type(c_ptr), intent(out) :: name
        end function
        subroutine gf_device_free(device) bind(c)
            import :: c_ptr
            type(c_ptr), value :: device
        end subroutine

        ! ---- star-particle flows
        function gf_flow_load(path, device, flow) bind(c) result(r)
            import :: c_int, c_ptr, c_char
            integer(c_int) :: r
            character(kind=c_char), intent(in) :: path(*)
            type(c_ptr), value :: device
            type(c_ptr), intent(out) :: flow
        end function
        subroutine gf_flow_free(flow) bind(c)
            import :: c_ptr
            type(c_ptr), value :: flow
        end subroutine
        function gf_flow_dim(flow, dim) bind(c) result(r)
            import :: c_int, c_ptr, c_size_t
            integer(c_int) :: r
            type(c_ptr), value :: flow
            integer(c_size_t), intent(out) :: dim
        end function
        function gf_flow_column_name(flow, i, name) bind(c) result(r)
            import :: c_int, c_ptr, c_size_t
            integer(c_int) :: r
            type(c_ptr), value :: flow
            integer(c_size_t), value :: i
            type(c_ptr), intent(out) :: name
        end function
        function gf_flow_cond_dim(flow, cond_dim) bind(c) result(r)
            import :: c_int, c_ptr, c_size_t
            integer(c_int) :: r
            type(c_ptr), value :: flow
            integer(c_size_t), intent(out) :: cond_dim
        end function
        function gf_flow_cond_name(flow, i, name) bind(c) result(r)
            import :: c_int, c_ptr, c_size_t
            integer(c_int) :: r
            type(c_ptr), value :: flow
            integer(c_size_t), value :: i
            type(c_ptr), intent(out) :: name
        end function
        function gf_flow_galaxy_count(flow, count) bind(c) result(r)
            import :: c_int, c_ptr, c_size_t
            integer(c_int) :: r
            type(c_ptr), value :: flow
            integer(c_size_t), intent(out) :: count
        end function
        function gf_flow_galaxy_id(flow, i, id) bind(c) result(r)
            import :: c_int, c_ptr, c_size_t
            integer(c_int) :: r
            type(c_ptr), value :: flow
            integer(c_size_t), value :: i
            type(c_ptr), intent(out) :: id
        end function
        function gf_flow_galaxy_condition(flow, id, cond, cond_len) bind(c) result(r)
            import :: c_int, c_ptr, c_char, c_double, c_size_t
            integer(c_int) :: r
            type(c_ptr), value :: flow
            character(kind=c_char), intent(in) :: id(*)
            real(c_double), intent(out) :: cond(*)
            integer(c_size_t), value :: cond_len
        end function
        function gf_flow_sample(flow, n, cond, cond_len, seed, stars, stars_len) bind(c) result(r)
            import :: c_int, c_ptr, c_size_t, c_double, c_int64_t, c_float
            integer(c_int) :: r
            type(c_ptr), value :: flow
            integer(c_size_t), value :: n, cond_len, stars_len
            real(c_double), intent(in) :: cond(*)
            integer(c_int64_t), value :: seed
            real(c_float), intent(out) :: stars(*)
        end function
        function gf_flow_sample_rows(flow, n, conds, conds_len, seed, stars, stars_len) bind(c) result(r)
            import :: c_int, c_ptr, c_size_t, c_double, c_int64_t, c_float
            integer(c_int) :: r
            type(c_ptr), value :: flow
            integer(c_size_t), value :: n, conds_len, stars_len
            real(c_double), intent(in) :: conds(*)
            integer(c_int64_t), value :: seed
            real(c_float), intent(out) :: stars(*)
        end function
        function gf_flow_log_prob(flow, n, stars, stars_len, cond, cond_len, log_prob, &
                                                 log_prob_len) bind(c) result(r)
            import :: c_int, c_ptr, c_size_t, c_double, c_float
            integer(c_int) :: r
            type(c_ptr), value :: flow
            integer(c_size_t), value :: n, stars_len, cond_len, log_prob_len
            real(c_float), intent(in) :: stars(*)
            real(c_double), intent(in) :: cond(*)
            real(c_double), intent(out) :: log_prob(*)
        end function
        function gf_flow_log_prob_rows(flow, n, stars, stars_len, conds, conds_len, log_prob, &
                                                      log_prob_len) bind(c) result(r)
            import :: c_int, c_ptr, c_size_t, c_double, c_float
            integer(c_int) :: r
            type(c_ptr), value :: flow
            integer(c_size_t), value :: n, stars_len, conds_len, log_prob_len
            real(c_float), intent(in) :: stars(*)
            real(c_double), intent(in) :: conds(*)
            real(c_double), intent(out) :: log_prob(*)
        end function

        ! ---- image autoencoder
        function gf_ae_load(path, device, ae) bind(c) result(r)
            import :: c_int, c_ptr, c_char
            integer(c_int) :: r
            character(kind=c_char), intent(in) :: path(*)
            type(c_ptr), value :: device
            type(c_ptr), intent(out) :: ae
        end function
        subroutine gf_ae_free(ae) bind(c)
            import :: c_ptr
            type(c_ptr), value :: ae
        end subroutine
        function gf_ae_image_size(ae, side) bind(c) result(r)
            import :: c_int, c_ptr, c_size_t
            integer(c_int) :: r
            type(c_ptr), value :: ae
            integer(c_size_t), intent(out) :: side
        end function
        function gf_ae_latent_dim(ae, latent_dim) bind(c) result(r)
            import :: c_int, c_ptr, c_size_t
            integer(c_int) :: r
            type(c_ptr), value :: ae
            integer(c_size_t), intent(out) :: latent_dim
        end function
        function gf_ae_encode(ae, n, images, images_len, latents, latents_len) bind(c) result(r)
            import :: c_int, c_ptr, c_size_t, c_float
            integer(c_int) :: r
            type(c_ptr), value :: ae
            integer(c_size_t), value :: n, images_len, latents_len
            real(c_float), intent(in) :: images(*)
            real(c_float), intent(out) :: latents(*)
        end function
        function gf_ae_decode(ae, n, latents, latents_len, images, images_len) bind(c) result(r)
            import :: c_int, c_ptr, c_size_t, c_float
            integer(c_int) :: r
            type(c_ptr), value :: ae
            integer(c_size_t), value :: n, latents_len, images_len
            real(c_float), intent(in) :: latents(*)
            real(c_float), intent(out) :: images(*)
        end function

        ! ---- HIGlow's conditional Glow
        function gf_glow_load(path, device, glow) bind(c) result(r)
            import :: c_int, c_ptr, c_char
            integer(c_int) :: r
            character(kind=c_char), intent(in) :: path(*)
            type(c_ptr), value :: device
            type(c_ptr), intent(out) :: glow
        end function
        subroutine gf_glow_free(glow) bind(c)
            import :: c_ptr
            type(c_ptr), value :: glow
        end subroutine
        function gf_glow_map_shape(glow, channels, side) bind(c) result(r)
            import :: c_int, c_ptr, c_size_t
            integer(c_int) :: r
            type(c_ptr), value :: glow
            integer(c_size_t), intent(out) :: channels, side
        end function
        function gf_glow_cond_range(glow, range, range_len) bind(c) result(r)
            import :: c_int, c_ptr, c_size_t, c_double
            integer(c_int) :: r
            type(c_ptr), value :: glow
            real(c_double), intent(out) :: range(*)
            integer(c_size_t), value :: range_len
        end function
        function gf_glow_sample(glow, n, cond, cond_len, temperature, seed, maps, maps_len) bind(c) result(r)
            import :: c_int, c_ptr, c_size_t, c_double, c_float, c_int64_t
            integer(c_int) :: r
            type(c_ptr), value :: glow
            integer(c_size_t), value :: n, cond_len, maps_len
            real(c_double), intent(in) :: cond(*)
            real(c_float), value :: temperature
            integer(c_int64_t), value :: seed
            real(c_float), intent(out) :: maps(*)
        end function
        function gf_glow_log_prob(glow, n, maps, maps_len, conds, conds_len, log_prob, &
                                                 log_prob_len) bind(c) result(r)
            import :: c_int, c_ptr, c_size_t, c_double, c_float
            integer(c_int) :: r
            type(c_ptr), value :: glow
            integer(c_size_t), value :: n, maps_len, conds_len, log_prob_len
            real(c_float), intent(in) :: maps(*)
            real(c_double), intent(in) :: conds(*)
            real(c_double), intent(out) :: log_prob(*)
        end function
        function gf_glow_posterior(glow, map, map_len, grid, symmetries, omega_m, sigma_8, &
                                                  axis_len, log_like, log_like_len) bind(c) result(r)
            import :: c_int, c_ptr, c_size_t, c_double, c_float
            integer(c_int) :: r
            type(c_ptr), value :: glow
            real(c_float), intent(in) :: map(*)
            integer(c_size_t), value :: map_len, grid, symmetries, axis_len, log_like_len
            real(c_double), intent(out) :: omega_m(*), sigma_8(*), log_like(*)
        end function

        function c_strlen(s) bind(c, name="strlen") result(r)
            import :: c_size_t, c_ptr
            integer(c_size_t) :: r
            type(c_ptr), value :: s
        end function
    end interface

contains

    ! A Fortran string as C's `const char*` wants it: without trailing blanks, NUL-terminated.
    pure function gf_c(s) result(c)
        character(len=*), intent(in) :: s
        character(kind=c_char, len=len_trim(s) + 1) :: c
        c = trim(s) // c_null_char
    end function

    ! A NUL-terminated string the library returns, copied into a Fortran string ('' for a NULL pointer).
    function gf_f(p) result(s)
        type(c_ptr), intent(in) :: p
        character(len=:), allocatable :: s
        character(kind=c_char), pointer :: chars(:)
        integer :: i, n
        if (.not. c_associated(p)) then
            s = ''
            return
        end if
        n = int(c_strlen(p))
        call c_f_pointer(p, chars, [n])
        allocate(character(len=n) :: s)
        do i = 1, n
            s(i:i) = chars(i)
        end do
    end function

    ! This thread's last error message (gf_last_error), as a Fortran string.
    function gf_error() result(s)
        character(len=:), allocatable :: s
        s = gf_f(gf_last_error())
    end function

end module gforge
